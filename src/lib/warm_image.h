/* Warm templates of image VMs (warm.h): the template's disk. The template VM boots on an overlay of
 * its own on the base image, with a copy of the defined VM's cloud-init seed. When it is saved, that
 * overlay becomes the template's frozen disk state: KEYDIR/disk.qcow2, mode 0400, its size, mtime
 * and checksum in meta.json. Each clone runs on a fresh overlay backed by it (VMDIR/clone-disk.qcow2,
 * a copy of KEYDIR/clone.qcow2, an empty overlay made at save time), so a clone's writes never reach
 * the template and no two clones see each other's files. The clone keeps the template's seed medium
 * (KEYDIR/seed.iso): its guest already read it, and its device state says what it holds.
 *
 * A UEFI VM's NVRAM (the OVMF variable store, a pflash device) is frozen the same way: the template
 * VM boots with a fresh copy of OVMF's variable store, which becomes KEYDIR/nvram.fd (0400, its size
 * and checksum in meta.json, both checked at each clone); each clone gets a private writable copy
 * (VMDIR/clone-nvram.fd), so its EFI variable writes reach neither the template nor other clones.
 * QEMU migrates the pflash contents (they are RAM blocks of their own, not the shared memory file)
 * and writes them back to the clone's file when it continues: that file must exist, be writable and
 * have the template's size.
 *
 * The key has the base image, the seed's checksum (cloud-init config, keys, the agent it installs),
 * the disk's size and, for UEFI, OVMF's code and variable store (path and identity); the argv
 * (machine, memory, cpus, devices) is keyed by warm.c. */
#pragma once
#include "backend.h"
#include "proto.h"
#include "util.h"

#include <json-c/json.h>

struct warm_image {
	char *base;		   /* the base image the VM's disk is an overlay on */
	char *vm_seed;		   /* the template VM's seed: the defined VM's; NULL for a container image's */
	uint64_t disk_size;	   /* virtual size of the VM's disk, bytes */
	char *disk, *seed, *blank; /* in the template's key dir */
	char *clone_disk;	   /* the clone's own overlay */
	/* UEFI: the OVMF variable store the template VM's NVRAM starts as a copy of, the template's
	 * NVRAM as it was when it was saved (KEYDIR/nvram.fd, 0400), and the clone's own writable copy
	 * of it (VMDIR/clone-nvram.fd). NULL for a BIOS VM. */
	char *fw_vars, *nvram, *clone_nvram;
};

/* For an image VM: its key lines into key and *ret (NULL for other VMs). tname names the defined VM
 * whose seed the template boots with; p is the plan of the VM that is being keyed (the template VM
 * or a clone of it). */
int warm_image_plan(struct store *st, const char *tname, const struct vm_spec *spec, const struct qemu_plan *p,
		    struct strbuf *key, struct warm_image **ret, struct hutch_error *err);
/* The same for a plain container image's VM (oci_disk.h): the base is its root filesystem in the
 * OCI cache, keyed with the disk's size; it has no seed (micro's kernel boots it, with the agent as
 * PID 1, no cloud-init) and no keys. A bootc image's VM is refused (-ENOTSUP). */
int warm_oci_plan(const struct store *st, const char *tname, const struct vm_spec *spec, const struct qemu_plan *p,
		  struct strbuf *key, struct warm_image **ret, struct hutch_error *err);
/* "WHAT PATH DEV INO SIZE MTIME" of a file the template depends on, or "WHAT -" when there is none,
 * as a key line. */
void warm_key_file(struct strbuf *key, const char *what, const char *path);
/* Where the template's files are (dir: its key dir), and the clone's overlay in vm_dir. */
void warm_image_place(struct warm_image *wi, const char *dir, const char *vm_dir);
void warm_image_free(struct warm_image *wi);

/* Before the template VM boots in bdir: bdir/disk.qcow2 on the base, bdir/seed.iso and the keys
 * that go with the seed; for UEFI, bdir/nvram.fd from OVMF's variable store. */
int warm_image_prepare(const struct warm_image *wi, const char *bdir, struct hutch_error *err);
/* After the template VM's agent said HELLO (afd, non-blocking; pid: its QEMU): let its first boot
 * finish (cloud-init, systemd: sshd listens) and sync, then PING until it is idle again. */
int warm_image_settle(int afd, pid_t pid, uint64_t deadline, struct hutch_error *err);
/* Read what the template VM's agent (afd) sent into rd, waiting up to 200 ms: 1 when bytes came, 0
 * when none yet; < 0 when QEMU (pid) exited ("the template VM exited STEP"), the deadline passed
 * (LATE is the message), or the channel closed. */
int warm_agent_read(struct proto_reader *rd, int afd, pid_t pid, uint64_t deadline, const char *step, const char *late,
		    struct hutch_error *err);
/* After it was saved: the disk (and the NVRAM) is frozen and recorded in meta, the clones' empty
 * overlay is made. */
int warm_image_seal(const struct warm_image *wi, const char *bdir, json_object *meta, struct hutch_error *err);
/* -EBADMSG when the template's disk, seed, empty overlay or NVRAM is missing or changed (tname: its
 * name). */
int warm_image_check(const struct warm_image *wi, json_object *meta, const char *tname, struct hutch_error *err);
/* The clone's argv (a copy of the cold one, already a clone's) with its disk on the clone's overlay,
 * the template's seed and, for UEFI, the clone's NVRAM; cold_disk, cold_seed and cold_nvram are the
 * paths the cold argv has. */
void warm_image_clone_argv(const struct warm_image *wi, const char *cold_disk, const char *cold_seed,
			   const char *cold_nvram, char **argv);
/* A fresh overlay for one clone, right before its QEMU starts, its own copy of the template's NVRAM
 * (UEFI), and the template VM's keys (its guest's host key, the key pair the guest authorizes) in
 * place of the clone's own. */
int warm_image_clone_disk(const struct warm_image *wi, struct hutch_error *err);
