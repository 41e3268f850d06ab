/* Snapshots of persistent VMs: QEMU's internal qcow2 snapshots (libvirt VMs: virt_snapshot.h).
 *
 * A running VM is saved with its RAM and devices (HMP savevm) and restored in place (loadvm): its
 * processes run on from where they were. An image VM keeps them in its disk.qcow2. A micro VM has
 * no disk, so its snapshots go to data/vms/NAME/snapshots.qcow2, a qcow2 with no guest device that
 * the monitor attaches (blockdev-add) when it is first needed: savevm keeps the VM state in it.
 * A stopped image VM gets disk-only snapshots (qemu-img snapshot). Deleting the VM deletes its
 * snapshots with its directory. A libvirt VM's snapshots are libvirt's own (virt_snapshot.h). */
#pragma once
#include "backend.h"
#include "qmp.h"

#include <json-c/json.h>

/* Tags: [A-Za-z0-9][A-Za-z0-9._-]{0,62}. */
bool snapshot_tag_valid(const char *tag);

/* Save, restore or remove TAG of NAME, running or stopped. A stopped VM restoring a snapshot with
 * RAM is started first. ret_json (optional): the ls entry of the saved snapshot. */
int snapshot_save(struct store *st, const char *name, const char *tag, json_object **ret_json, struct hutch_error *err);
int snapshot_restore(struct store *st, const char *name, const char *tag, struct hutch_error *err);
int snapshot_remove(struct store *st, const char *name, const char *tag, struct hutch_error *err);
/* NAME's snapshots as an array of {tag, vm_state_bytes, ram, date, vm_clock_s}, oldest first. */
int snapshot_list(struct store *st, const char *name, json_object **ret_array, struct hutch_error *err);

/* qemu-img ARGS, its stdout in *ret_out (optional), its stderr's first line in the error. */
int snapshot_qemu_img(char *const argv[], char **ret_out, struct hutch_error *err);
/* The internal snapshots in a qcow2 FILE, as snapshot_list's array (qemu-img info -U). */
int snapshot_qcow2_list(const char *file, json_object **ret_array, struct hutch_error *err);

/* The monitor's side (a running VM): op is snapshot-save, snapshot-restore or snapshot-rm. */
int snapshot_qmp(struct qmp *q, const char *vm_dir, const struct vm_spec *spec, const char *op, const char *tag,
		 struct hutch_error *err);
