/* Acceleration that is proven, not assumed. A /dev/kvm that opens is no proof that KVM runs a
 * guest: a paravirtual or nested KVM can refuse QEMU's MSRs, or run a guest kernel that never gets
 * anywhere. So `auto` uses KVM only where a probe has booted the micro template under KVM to its
 * agent on this host, and the verdict is cached per host boot (keyed by the boot id, the QEMU
 * binary and its version, and the host kernel release). */
#pragma once
#include "util.h"

#include <limits.h>

enum accel_mode { ACCEL_UNSET = 0, ACCEL_AUTO, ACCEL_KVM, ACCEL_TCG };
/* "auto", "kvm", "tcg"; ACCEL_UNSET reads as "auto". */
const char *accel_mode_name(enum accel_mode m);
/* -EINVAL for anything but auto, kvm, tcg. */
int accel_mode_parse(const char *s, enum accel_mode *ret);

/* The CPU model tried first under KVM, and the one tried when QEMU refuses it at start
 * (MSR 0x10a is IA32_ARCH_CAPABILITIES, which paravirtual and some nested KVMs reject). */
#define ACCEL_CPU_KVM "host"
#define ACCEL_CPU_KVM_FALLBACK "host,-arch-capabilities"
#define ACCEL_CPU_TCG "max"
/* A guest under working KVM reaches its agent in well under a second; a nested one in a few. */
#define ACCEL_PROBE_TIMEOUT_MS 10000

/* /dev/kvm as this user sees it. */
enum kvm_dev { KVM_DEV_OK = 0, KVM_DEV_MISSING, KVM_DEV_DENIED, KVM_DEV_ERROR };
struct kvm_device {
	enum kvm_dev state;
	int error; /* errno of the failed open */
};
void accel_check_device(struct kvm_device *ret);
/* The exact fix for a /dev/kvm this user may not open: the group to join, and first the group
 * access itself when the device is root-only. */
char *accel_permission_fix(void);

/* What a verdict is valid for. */
struct accel_host {
	char boot_id[40];    /* /proc/sys/kernel/random/boot_id */
	char kernel[65];     /* uname -r */
	char qemu[PATH_MAX]; /* the QEMU binary */
	char qemu_id[96];    /* device, inode, size and mtime of that binary: any upgrade changes it */
};
/* HUTCH_PROC_ROOT (tests only) relocates /proc. */
int accel_host_read(const char *qemu_binary, struct accel_host *ret, struct hutch_error *err);
bool accel_host_equal(const struct accel_host *a, const struct accel_host *b);

enum probe_outcome { PROBE_OK = 0, PROBE_QEMU_EXIT, PROBE_TIMEOUT, PROBE_ERROR };
const char *probe_outcome_name(enum probe_outcome o);

struct accel_verdict {
	struct accel_host host;
	char qemu_version[64];
	bool works;
	enum probe_outcome outcome; /* of the last model tried */
	char cpu[64];		    /* works: the model that booted; otherwise the last one tried */
	char detail[512];	    /* why not: QEMU's own message, or how far the guest got */
	uint64_t probe_ms;	    /* what the probe cost, all models together */
	int64_t when;		    /* unix time of the probe */
};
/* Read the cached verdict. -ENOENT when there is none, -ESTALE when it is for another host key
 * (another boot, QEMU or kernel); ret is filled only on success. */
int accel_verdict_load(const char *path, const struct accel_host *key, struct accel_verdict *ret);
int accel_verdict_save(const char *path, const struct accel_verdict *v, struct hutch_error *err);

/* What a VM runs with. */
struct accel_info {
	bool kvm;
	bool warn;	  /* worth one warning line: KVM was wanted by auto and could not be used */
	bool proven;	  /* kvm: a probe booted a guest with it (false only for render without a verdict) */
	char cpu[64];	  /* -cpu */
	char why[600];	  /* why not KVM, for the warning and `hutch doctor` */
	uint64_t tsc_khz; /* host TSC rate (TCG microvm guests are told it; see qemu.c) */
};

/* Pure: decides from the mode, the device and the verdict (NULL: none yet). Returns 0 with ret
 * filled, -EAGAIN when a probe is needed first (auto or kvm with a usable device and no verdict),
 * or, for ACCEL_KVM only, an error that names the cause. */
int accel_decide(enum accel_mode mode, const struct kvm_device *dev, const struct accel_verdict *v,
		 struct accel_info *ret, struct hutch_error *err);

/* The probe: boot a guest under KVM and wait for its agent's HELLO, trying ACCEL_CPU_KVM and then,
 * if QEMU refused that at start, ACCEL_CPU_KVM_FALLBACK. A guest that makes no progress to its
 * agent within timeout_ms is a failure. Fills ret (works or not); < 0 only when the probe could not
 * be run at all. */
struct accel_probe_in {
	const char *qemu;     /* binary */
	const char *kernel;   /* the micro template */
	const char *initrd;   /* the micro template, with the agent as /init */
	const char *work_dir; /* a short private dir for sockets and logs (sun_path) */
	uint64_t timeout_ms;
};
int accel_probe_run(const struct accel_probe_in *in, struct accel_verdict *ret, struct hutch_error *err);

/* Everything start, run and doctor need: the device, the cached verdict, a probe when needed
 * (when may_probe; guest() makes the micro template on demand), then the decision. Without a
 * verdict and without may_probe, auto means TCG and kvm an error (unless render). The verdict
 * file lives at CACHE_DIR/accel.json; concurrent starts probe once (CACHE_DIR/accel.lock). */
struct accel_request {
	enum accel_mode mode;
	bool may_probe;	  /* probe when there is no verdict yet (start) */
	bool render;	  /* no verdict and no probe: show what a start would try first */
	bool force_probe; /* doctor --probe: probe again even with a fresh verdict */
	const char *qemu; /* binary */
	const char *cache_dir;
	const char *run_dir; /* where the probe puts its sockets (short) */
	uint64_t timeout_ms; /* 0: ACCEL_PROBE_TIMEOUT_MS (HUTCH_ACCEL_PROBE_TIMEOUT overrides) */
	int (*guest)(void *userdata, char **ret_kernel, char **ret_initrd, struct hutch_error *err);
	void *userdata;
};
struct accel_result {
	struct accel_info info;
	struct kvm_device dev;
	bool have_verdict;
	bool probed; /* this call ran the probe */
	struct accel_verdict verdict;
};
int accel_resolve(const struct accel_request *rq, struct accel_result *ret, struct hutch_error *err);
/* Under TCG only: the host TSC rate, measured in 20 ms once per host boot and kept in
 * cache_dir/tsc-khz (NULL: measured each time; HUTCH_TSC_KHZ overrides). accel_resolve leaves
 * info.tsc_khz 0; the QEMU plan asks only when it renders a TCG micro VM. */
uint64_t accel_tsc_khz(const char *cache_dir);
/* The path of the cached verdict. */
char *accel_verdict_path(const char *cache_dir);
