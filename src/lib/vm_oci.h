/* VMs from container images (source: {oci: REF}): the disk at create, and what `hutch run NAME`
 * with no command runs. The boot itself is micro's kernel and initramfs with the disk as root
 * (agent/rootfs.c), or a bootc image's own kernel and initramfs with root=/dev/vda, systemd as init
 * and the agent as a systemd unit put into the image when its disk was built (oci_disk.h). */
#pragma once
#include "spec.h"
#include "store.h"

#define VM_OCI_CONFIG "oci-config.json" /* in the VM's dir: the image config, verified */
#define VM_OCI_KERNEL "oci-vmlinuz"	/* in the VM's dir: a bootc image's kernel, */
#define VM_OCI_INITRD "oci-initrd.img"	/* and its initramfs */
#define VM_OCI_BOOT_MAX (1u << 30)

/* Build (or reuse) the image's root filesystem and make the VM's disk.qcow2 on it, of the spec's
 * disk: size (the root filesystem's own size when unset; the guest grows the filesystem to fill
 * the disk at boot, or to root_size when that is set: hutch.rootsize= on its command line).
 * *ret_seed: a bootc image with cloud-init, which gets the NoCloud seed of image VMs too. */
int vm_oci_prepare(const struct store *st, const struct vm_spec *spec, const char *name, bool *ret_seed,
		   struct hutch_error *err);

/* A VM of a bootc image: it boots the image's kernel and systemd, and has its sshd and login user. */
bool vm_oci_is_bootc(const struct store *st, const struct vm_spec *spec, const char *name);

/* The image's Entrypoint+Cmd, Env, WorkingDir and User for VM NAME. -ENOENT when NAME is not a VM
 * made from a container image. The strings stay owned by ret; release with vm_oci_defaults_release. */
struct vm_oci_defaults {
	char **argv, **env;
	char *cwd, *user;
};
int vm_oci_defaults(const struct store *st, const char *name, struct vm_oci_defaults *ret, struct hutch_error *err);
void vm_oci_defaults_release(struct vm_oci_defaults *d);
