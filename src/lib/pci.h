/* PCI and GPU passthrough: what the host has (IOMMU, vfio-pci, groups, drivers), and switching a
 * whole IOMMU group between vfio-pci and its native drivers without ever wedging the host.
 *
 * The hazard (reference 002): unbinding the nvidia driver while any client holds the GPU blocks
 * forever in nv_pci_remove under the device lock, and the host needs a reboot. So a switch away from
 * nvidia never writes to sysfs 'unbind': it unloads the module stack with modprobe -r, which is
 * refcount-guarded and fails with EBUSY instead of blocking, and before that it refuses outright when
 * the module's refcount, its holders, or any process's open /dev/nvidia* (found through
 * /proc/PID/fd readlinks, never by opening the nodes) says the GPU is in use. Every sysfs write runs
 * in a child under a deadline; a switch that stalls poisons the device until the next boot.
 *
 * /sys and /proc are read under HUTCH_SYSFS_ROOT and HUTCH_PROC_ROOT (tests only). */
#pragma once
#include "util.h"

#define PCI_ADDR_LEN 16 /* "0000:01:00.0" + NUL, with room */
#define PCI_DEADLINE_MS_DEFAULT 30000

enum pci_mode { PCI_MODE_UNBOUND = 0, PCI_MODE_VFIO, PCI_MODE_NATIVE };

struct pci_func {
	char addr[PCI_ADDR_LEN];
	unsigned vendor, device, class_code; /* class_code: 0x030000 for VGA */
	char driver[64];		     /* "" when unbound */
	char override[64];		     /* driver_override, "" when none */
	enum pci_mode mode;
};

struct pci_group {
	char addr[PCI_ADDR_LEN]; /* the device asked about */
	int group;		 /* IOMMU group number, -1 when there is none (IOMMU off) */
	struct pci_func *funcs;	 /* every function of the group (just addr's without a group) */
	size_t n;
	bool half_switched; /* functions in different modes, or some unbound */
	bool wedged;	    /* a task is stuck (D state) in a driver's remove */
	char wedge_why[192];
	bool poisoned; /* a switch stalled during this boot */
	char poison_why[192];
};

struct pci_host {
	bool iommu_cmdline; /* intel_iommu=on / amd_iommu=on / iommu=pt... on the kernel command line */
	bool iommu_groups;  /* /sys/kernel/iommu_groups has groups */
	bool vfio_loaded;   /* the vfio-pci driver is registered */
	char boot_id[40];
};

const char *pci_mode_name(enum pci_mode m);
/* "01:00.0" or "0000:01:00.0" -> "0000:01:00.0"; anything else is -EINVAL naming it. */
int pci_addr_normalize(const char *in, char out[PCI_ADDR_LEN], struct hutch_error *err);
int pci_host_probe(struct pci_host *ret);
/* The device must exist; loads its group and flags. state_dir holds poison markers. */
int pci_group_load(const char *addr, const char *state_dir, struct pci_group *ret, struct hutch_error *err);
void pci_group_release(struct pci_group *g);
/* GPUs (display class) and devices on vfio-pci: what `pci status` reports. Sorted. */
int pci_interesting(char ***ret_addrs, struct hutch_error *err);
/* The group's mode when all functions agree, else PCI_MODE_UNBOUND. */
enum pci_mode pci_group_mode(const struct pci_group *g);
/* "pci: [\"0000:01:00.0\", \"0000:01:00.1\"]\n", ready to paste into a VM's spec. */
char *pci_spec_block(const struct pci_group *g);

/* Whether the process may switch drivers: root. Otherwise -EPERM naming the sudo command to run
 * (argv_line is what the user typed after 'hutch'). A fake sysfs (HUTCH_SYSFS_ROOT) needs no root. */
int pci_require_root(const char *argv_line, struct hutch_error *err);

/* What a switch found and did, for the CLI. */
struct pci_switch_result {
	char **steps; /* one line per action, in order: "driver_override 0000:01:00.0 vfio-pci", ... */
	bool changed;
};
void pci_switch_result_release(struct pci_switch_result *r);

/* Flip the whole group to vfio-pci or to its native drivers. Refuses (nothing written) when the IOMMU
 * is off, the device is poisoned or wedged, or an NVIDIA function is in use. deadline_ms 0 = default. */
int pci_switch(const char *addr, enum pci_mode target, const char *state_dir, uint64_t deadline_ms,
	       struct pci_switch_result *ret, struct hutch_error *err);
/* Rebind a half-switched or unbound group to vfio-pci, and clear a stale poison marker; refuses and
 * touches nothing while a task is stuck in a driver's remove (a reboot is needed then). */
int pci_recover(const char *addr, const char *state_dir, uint64_t deadline_ms, struct pci_switch_result *ret,
		struct hutch_error *err);
