/* Snapshots of a libvirt VM (snapshot.h dispatches here) through libvirt's own snapshot API:
 * virDomainSnapshotCreateXML, virDomainRevertToSnapshot, virDomainListAllSnapshots and
 * virDomainSnapshotDelete. They are internal qcow2 snapshots, as on the qemu backend: a running VM's
 * are disk, RAM and devices (libvirt's savevm), a stopped image VM's are disk-only (libvirt's
 * qemu-img). libvirt keeps their metadata, so `virsh snapshot-list hutch-NAME` shows the same list;
 * destroy undefines the domain with it (VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA) and removes the
 * qcow2 that holds their data.
 *
 * libvirt refuses an internal snapshot of a domain with no disk ("internal and full system
 * snapshots require all disks to be selected for snapshot"): it needs a qcow2 disk of the domain to
 * hold the RAM. So a persistent micro VM's domain carries one, data/vms/NAME/snapshots.qcow2, which
 * its guest sees as an unused 16 MiB virtio disk (serial hutch-snapshots). The qemu backend keeps the
 * same file out of the guest's sight (a block node with no device), which libvirt cannot express. */
#pragma once
#include "backend.h"

#include <json-c/json.h>

/* The snapshot disk of a persistent micro VM (NULL for the others: an image VM keeps its snapshots
 * in its disk, a disposable VM has none). */
char *virt_snapshot_disk_path(const struct vm *vm);
/* Make that disk when it is missing (before the domain is defined or started). */
int virt_snapshot_disk_make(const struct vm *vm, struct hutch_error *err);

/* The <domainsnapshot> document of TAG: ram keeps the RAM and device state (a running domain's),
 * else the disks only. agent: its agent answered when it was taken (restore then waits for it to
 * answer again, as on the qemu backend; a snapshot of a guest without one does not wait). */
int virt_snapshot_xml(const char *tag, const char *vm_name, bool ram, bool agent, char **ret, struct hutch_error *err);
/* What libvirt's snapshot XML says: creation time (s), its domain's state then ("running",
 * "shutoff", ...), whether it holds RAM, and whether hutch saw its agent answer. */
struct virt_snapshot_info {
	int64_t created;
	char state[24];
	bool ram, agent;
};
int virt_snapshot_parse(const char *xml, struct virt_snapshot_info *ret, struct hutch_error *err);

/* The verbs on a libvirt VM (vm->spec->backend is libvirt): as snapshot_save, snapshot_restore,
 * snapshot_remove and snapshot_list. */
int virt_snapshot_save(struct vm *vm, const char *tag, struct hutch_error *err);
int virt_snapshot_restore(struct vm *vm, const char *tag, struct hutch_error *err);
int virt_snapshot_remove(struct vm *vm, const char *tag, struct hutch_error *err);
int virt_snapshot_list(struct vm *vm, json_object **ret_array, struct hutch_error *err);
