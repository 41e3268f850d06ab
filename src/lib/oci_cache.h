/* The cache of root filesystems made from container images (cache/oci/<HEX>/, oci_disk.h): what
 * is there, which VMs' disks are based on it, and pruning what none uses. */
#pragma once
#include "store.h"

struct oci_cache_entry {
	char *key;     /* "sha256:HEX": the manifest digest the entry is named by */
	char *dir;     /* cache/oci/<HEX> */
	uint64_t size; /* bytes allocated on the host (rootfs.img is sparse) */
	bool bootc;    /* it carries a kernel (vmlinuz) */
	char **users;  /* VMs (or "NAME (kept disk)") whose qcow2 disks are based on it */
};
/* Every entry, sorted by key. */
int oci_cache_list(const struct store *st, struct oci_cache_entry **ret, size_t *ret_n, struct hutch_error *err);
void oci_cache_entries_free(struct oci_cache_entry *v, size_t n);
/* Remove every entry no VM's disk is based on (one being built is left alone), and in a bootc entry
 * VMs use the root filesystems none is based on (another agent's, user's or key's); ret_removed gets
 * the entries' keys, and "KEY root filesystem root-HEX.img" for those files. */
int oci_cache_prune(const struct store *st, char ***ret_removed, struct hutch_error *err);
