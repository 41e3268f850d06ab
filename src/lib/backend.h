/* Backends run VMs. The verbs only see struct backend_ops, so libvirt can sit beside the embedded
 * QEMU backend without touching them. */
#pragma once
#include "spec.h"
#include "store.h"
#include "util.h"

struct vm {
	struct store *store;
	char *name;
	struct vm_spec *spec; /* resolved spec from data/vms/NAME/spec.yml */
};
/* Load data/vms/NAME/spec.yml. -ENOENT "no VM named 'x'" when it isn't defined. */
int vm_load(struct store *st, const char *name, struct vm *ret, struct hutch_error *err);
void vm_release(struct vm *vm);

struct start_opts {
	uint64_t timeout_ms; /* for everything start waits for */
	bool ephemeral;	     /* destroy the instance when it stops (run --rm) */
	int wait;	     /* enum start_wait (ready.h); 0 = auto */
};
struct start_result {
	uint64_t boot_ms;  /* start -> HELLO, as seen by the caller */
	uint64_t spawn_ms; /* monitor ready to spawn qemu (template check, argv) */
	uint64_t qmp_ms;   /* QMP handshake done */
	uint64_t hello_ms; /* agent HELLO */
	bool kvm;
	bool accel_warn;   /* KVM was wanted (auto) and could not be used: worth one warning line */
	bool accel_probed; /* this start ran the KVM probe */
	uint64_t accel_probe_ms;
	char accel_cpu[64];
	char accel_why[600];
	char kernel_release[64];
	int waited;		  /* enum start_wait: what start waited for, resolved */
	uint64_t ssh_ms;	  /* start -> sshd listening in the guest; 0: not waited for */
	uint64_t cloud_init_ms;	  /* start -> cloud-init done; 0: not waited for */
	bool no_sshd;		  /* the image has no sshd */
	int cloud_init;		  /* enum ci_state when start waited for cloud-init */
	int cloud_init_failures;  /* failed modules (each named in a warning) */
	char shares_problem[600]; /* shares not mounted, or mounted with a warning; "" when all is well */
	char net_problem[400];	  /* the guest did not set up its netvm links; "" when all is well */
};
/* The one warning line a start under TCG deserves (auto wanted KVM and could not use it), or NULL. */
char *start_accel_warning(const struct start_result *r);

struct stop_opts {
	bool force;
	uint64_t timeout_ms;
};
struct stop_result {
	char method[32]; /* agent | acpi | quit | kill | not-running */
	uint64_t ms;
};
struct vm_status {
	bool running;
	bool kvm;
	uint64_t uptime_s;
	bool agent;	      /* the agent said HELLO and is healthy */
	char agent_state[32]; /* waiting ready unresponsive gone broken, or unknown */
	int64_t agent_since;  /* wall clock, s: when agent_state began; 0 unknown */
	char agent_why[160];
	int sessions;
};

struct backend_ops {
	const char *name;
	int (*start)(struct vm *vm, const struct start_opts *o, struct start_result *ret, struct hutch_error *err);
	int (*stop)(struct vm *vm, const struct stop_opts *o, struct stop_result *ret, struct hutch_error *err);
	int (*status)(struct vm *vm, struct vm_status *ret, struct hutch_error *err);
	/* The exact command or document that start would use, without starting anything. */
	int (*render)(struct vm *vm, struct strbuf *out, struct hutch_error *err);
};

const struct backend_ops *backend_for(const struct vm_spec *spec, struct hutch_error *err);
extern const struct backend_ops backend_qemu;

/* Shared by the qemu backend and the monitor: everything needed to build QEMU's argv. */
struct qemu_plan {
	char *binary;
	char *kernel, *initrd, *kernel_release;
	char *disk, *seed, *fw_code, *nvram, *smbios; /* image VMs */
	char *vm_dir, *run_dir;
	char **argv;
	struct accel_info *accel;
	uint64_t template_ms;  /* time spent making sure the template is cached */
	struct shares *shares; /* shares.h: planned (and at start checked) shares */
	struct net_plan *net;  /* netvm.h: netvm links */
};
/* How the plan decides on KVM: a start may probe (the CLI, before the monitor), the monitor uses
 * the verdict that start left, render never boots anything. */
enum plan_use { PLAN_START, PLAN_MONITOR, PLAN_RENDER };
int qemu_plan_make(struct vm *vm, enum plan_use use, struct qemu_plan *ret, struct hutch_error *err);
/* The accelerator decision for a VM (its spec, HUTCH_ACCEL, config.yml), probing KVM when use is
 * PLAN_START and there is no verdict for this host boot yet. qemu: the binary, NULL to look it up
 * (only when KVM is in question). */
int vm_accel(struct vm *vm, const char *qemu, enum plan_use use, struct accel_result *ret, struct hutch_error *err);
/* The same for a bare mode (doctor): force_probe probes again even with a verdict. */
int store_accel(struct store *st, const char *qemu, enum accel_mode mode, enum plan_use use, bool force_probe,
		struct accel_result *ret, struct hutch_error *err);
void qemu_plan_release(struct qemu_plan *p);
/* Where the static agent binary is: HUTCH_AGENT, beside the hutch binary, or libexec. */
int agent_binary_path(char **ret, struct hutch_error *err);
