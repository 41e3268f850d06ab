/* Warm templates: disposables restored from a saved VM instead of booted (Kata Containers' VM
 * templating on QEMU). Not to be confused with the micro template (template.h), which is the
 * kernel and initramfs a micro VM boots.
 *
 * A warm template is a micro VM booted once with its RAM in a memory-backend-file (share=on), paused
 * after the agent's HELLO, and its device state migrated to a file with x-ignore-shared (the RAM
 * stays in the memory file). A clone starts with -S -incoming defer on the same memory file with
 * share=off (MAP_PRIVATE: pages come from the page cache, writes are copy-on-write and never reach
 * the file), loads the device state and continues. Nothing that discards guest RAM (balloon,
 * free-page reporting, virtio-mem, postcopy) may run in a clone: a discard on a MAP_PRIVATE file
 * mapping punches a hole in the file itself, under every other clone.
 *
 * Layout: CACHE/warm/NAME/KEY/{mem,state,meta.json}, and for an image VM its frozen disk
 * {disk.qcow2,seed.iso,clone.qcow2} and a UEFI VM's NVRAM, nvram.fd (warm_image.h; a container
 * image's VM has no seed.iso); KEY is a digest of everything that shapes the guest (kernel,
 * initramfs, firmware, QEMU binary, argv, memory, accel). A new key makes a new template and the old
 * one goes; running clones keep the files they mapped. */
#pragma once
#include "backend.h"
#include "proto.h"
#include "qmp.h"

#include <json-c/json.h>

struct warm_image;

/* What a warm template is made from and where it lives, for one VM's spec. */
struct warm_plan {
	char *name;		   /* the template: micro, or the VM whose spec it was made from */
	char *key;		   /* hex sha256 */
	char *dir;		   /* CACHE/warm/NAME/KEY16 */
	char *mem, *state;	   /* dir/mem, dir/state */
	uint64_t mem_size;	   /* bytes */
	char **clone_argv;	   /* the VM's argv, as a clone of this template */
	char **template_argv_base; /* canonical argv, before the template's memory and dirs */
	const struct vm_spec *spec;
	const struct qemu_plan *plan;
	struct warm_image *image; /* an image or container image VM's disk (warm_image.h); NULL for micro */
};

/* Whether a VM of this spec can be a clone: micro, cloud-image (BIOS or UEFI, with or without a
 * TPM) and container-image VMs with user or no network (a bootc image's VM is refused by
 * warm_plan_make, which knows the VM). -ENOTSUP says why. */
int warm_supported(const struct vm_spec *s, struct hutch_error *err);
/* The warm plan of a VM (name: the VM, for the clone argv) whose qemu plan is p, for template tname. */
int warm_plan_make(struct store *st, const char *tname, const char *name, const struct vm_spec *spec,
		   const struct qemu_plan *p, struct warm_plan *ret, struct hutch_error *err);
void warm_plan_release(struct warm_plan *wp);

/* 0: the template exists and its state file has the recorded size and checksum. -ENOENT: there is
 * none for this key. -EBADMSG: it is corrupt or truncated (err says what). */
int warm_template_check(const struct warm_plan *wp, struct hutch_error *err);
/* Boot the template VM, save it, stop it: the template for wp's key. Serialised per name by a lock;
 * when another process made it meanwhile, that one is kept. ret_ms (optional): how long it took. */
int warm_template_make(struct store *st, const struct warm_plan *wp, uint64_t timeout_ms, uint64_t *ret_ms,
		       struct hutch_error *err);
/* In a clone QEMU started with wp->clone_argv: load the device state and continue. Bounded by
 * timeout_ms; a QEMU that fails to load exits, which comes back as an error, never a hang. */
int warm_restore(struct qmp *q, const struct warm_plan *wp, uint64_t timeout_ms, struct hutch_error *err);

/* The payload of MSG_IDENTITY for a fresh clone: 512 bytes from the host's RNG, the host's clock,
 * the hostname and a new machine-id. */
void warm_identity_encode(struct proto_buf *b, const char *hostname);

/* run --rm marks its instance with the template it should be a clone of. */
int warm_mark_instance(struct store *st, const char *instance, const char *tname, struct hutch_error *err);
/* The template an instance was marked with, or NULL. */
char *warm_instance_template(struct store *st, const char *instance);

/* The templates in the cache, as JSON objects {name, key, dir, mem_bytes, disk_bytes, state_bytes,
 * created, boot_ms, qemu, kernel_release}, sorted by name. */
int warm_list(struct store *st, json_object **ret_array, struct hutch_error *err);
/* Remove NAME's templates. -ENOENT when there are none. */
int warm_remove(struct store *st, const char *name, struct hutch_error *err);
/* The frozen disks of image VMs' templates (each a qcow2 overlay on a cached base image, at
 * WARM/NAME/KEY/disk.qcow2): for the image cache, a base under one of them is in use. */
char **warm_template_disks(const struct store *st);

/* Make (again) the warm template NAME: 'micro', or a defined micro VM. *ret: its ls entry. */
int warm_save(struct store *st, const char *name, uint64_t timeout_ms, json_object **ret, struct hutch_error *err);

/* What a running VM's monitor says of its restore (for run -v and inspect). */
struct warm_status {
	char restored_from[64]; /* "" when it was not restored */
	uint64_t restore_ms;	/* QEMU spawned -> the agent answered after the restore */
	uint64_t made_ms;	/* this start made the template first; 0 when it existed */
	char warning[512];	/* why it booted cold after all */
};
int warm_status(struct store *st, const char *name, struct warm_status *ret);

/* The monitor's side, one per VM (monitor.c keeps it opaque). */
struct warm_clone;
/* An instance marked by run --rm gets a clone plan: the template is made when missing; a corrupt
 * one is removed and the VM boots cold with a warning. p->argv becomes the clone's argv. *ret stays
 * NULL for a VM that is not a clone. Never fails the start: anything wrong means a cold boot. */
void warm_clone_setup(struct store *st, const char *name, const struct vm_spec *spec, struct qemu_plan *p,
		      uint64_t timeout_ms, struct warm_clone **ret, char **ret_log);
/* Whether p->argv is the clone's, with the restore still to come. */
bool warm_clone_pending(const struct warm_clone *w);
/* After QEMU is up on the clone argv: load the state and continue. -EREMOTEIO (QMP refused a
 * command) or -EPROTO (the migration failed) say that QEMU refused the state. */
int warm_clone_restore(struct warm_clone *w, struct qmp *q, struct hutch_error *err);
/* The restore failed (why: what went wrong): the plan's argv is the cold one again, the warning is
 * kept for the start's report, and the caller starts QEMU afresh. The template is removed only when
 * QEMU refused it (refused); a QEMU that was slow, killed or never started says nothing against
 * the template, and the next clone tries it again. */
void warm_clone_fall_back(struct warm_clone *w, struct qemu_plan *p, bool refused, const char *why);
/* A restored clone whose agent did not answer (why: what it did not do): the plan's argv is the
 * cold one again and the warning says why; the caller kills the clone's QEMU and starts afresh.
 * -EINVAL when w was not restored. */
int warm_clone_abandon(struct warm_clone *w, struct qemu_plan *p, const char *why);
const char *warm_clone_warning(const struct warm_clone *w);
bool warm_clone_restored(const struct warm_clone *w);
/* Fields for the monitor's ready notice and status: restored_from, restore_ms, warm_warning. */
void warm_clone_json(const struct warm_clone *w, uint64_t restore_ms, json_object *o);
void warm_clone_free(struct warm_clone *w);
