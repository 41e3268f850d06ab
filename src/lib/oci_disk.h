/* Disks from container images: the image's root filesystem as an ext4 image, built without root
 * and cached by manifest digest under cache/oci/<hex>/ (rootfs.img, config.json; a bootc image has
 * its kernel and initramfs there, and a root-<access key>.img per agent, user and keys put in, see
 * oci_access.h), so two VMs of one image (and one key) unpack it once. */
#pragma once
#include "store.h"
#include "util.h"

struct oci_disk {
	char *key;	       /* "sha256:HEX": the manifest digest (docker-archive: of config and layers) */
	char *dir;	       /* cache/oci/<HEX> */
	char *rootfs;	       /* dir/rootfs.img (bootc: dir/root-KEY.img): raw ext4, the overlays' base */
	char *config;	       /* dir/config.json: the image config, verified */
	char *kernel, *initrd; /* bootc: dir/vmlinuz and dir/initrd.img; NULL for a plain image */
	uint64_t size;	       /* bytes of rootfs.img */
	bool cloud_init;       /* bootc, and the image has /usr/bin/cloud-init */
	bool built;	       /* this call built it (false: it was cached) */
};
void oci_disk_release(struct oci_disk *d);
#define OCI_DISK_CLOUD_INIT "cloud-init" /* in dir: the bootc image has cloud-init */

/* Make sure the root filesystem of image REF (oci.h's references) is in the cache. A failure
 * leaves nothing behind in the cache. A bootc image (one with a kernel) gets ACC written into it
 * (the agent as an enabled systemd unit, the login user and keys) when it is built, and is built
 * again for another agent binary, user or keys. */
struct oci_access;
int oci_disk_ensure(const struct store *st, const char *ref, const struct oci_access *acc, struct oci_disk *ret,
		    struct hutch_error *err);

/* The debugfs commands that give the files of ROOT_DIR's tree the image's ownership, modes and
 * times, and make its device nodes; exposed for tests. */
struct oci_tree;
char *oci_disk_fixup_script(const struct oci_tree *t);
