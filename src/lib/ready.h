/* When a started VM is usable: the agent's HELLO, sshd listening in the guest, cloud-init done.
 * Everything is observed through the agent (reading /proc/net/tcp and /run/cloud-init/ in the
 * guest), never by polling ssh from the host. */
#pragma once
#include "spec.h"
#include "store.h"
#include "util.h"

/* What `start --wait` waits for; each level includes the ones before it. */
enum start_wait { WAIT_AUTO = 0, WAIT_NONE, WAIT_AGENT, WAIT_SSH, WAIT_CLOUD_INIT };
extern const char *const start_wait_names[]; /* "auto", "none", ... indexed by enum start_wait */

/* AUTO: micro VMs wait for the agent; image VMs for the agent and sshd, and for cloud-init too
 * when the seed carries the user's own work (packages, runcmd). ssh and cloud-init on a micro VM
 * are -EINVAL: it has neither. */
int ready_resolve_wait(const struct vm_spec *spec, enum start_wait want, enum start_wait *ret, struct hutch_error *err);
/* What ready_resolve_wait cannot tell from the spec: a container image's VM has sshd and
 * cloud-init to wait for only when it is a bootc one (vm_oci.h). Before the VM starts. */
/* The first steps of a start on either backend: the wait level (resolved and checked), the VM's
 * run dir, and its run lock (*ret_lock_fd, which the caller hands to the monitor or supervisor). */
int ready_start_begin(const struct store *st, const struct vm_spec *spec, const char *name, enum start_wait want,
		      enum start_wait *ret_level, int *ret_lock_fd, struct hutch_error *err);
int ready_check_wait(const struct store *st, const struct vm_spec *spec, const char *name, enum start_wait level,
		     struct hutch_error *err);

enum ci_state { CI_UNKNOWN = 0, CI_NONE, CI_DISABLED, CI_RUNNING, CI_DONE, CI_ERROR };
extern const char *const ci_state_names[]; /* "unknown", "none", "disabled", "running", "done", "error" */

struct ci_status {
	enum ci_state state;
	char stage[32];	 /* running: init-local, init, modules-config, modules-final ("" between) */
	char **failures; /* error: "MODULE: message" per failed module (strv), printable ASCII only */
};
void ci_status_release(struct ci_status *s);

/* The guest's /run/cloud-init/result.json (written when the final stage ends): done, or error
 * with the failed modules. -EINVAL when it is not that document. */
int ready_parse_result(const char *untrusted, struct ci_status *ret);
/* The guest's /run/cloud-init/status.json while it runs: the stage now running. */
int ready_parse_status(const char *untrusted, struct ci_status *ret);
/* Whether /proc/net/tcp{,6} text shows a socket listening on PORT. */
bool ready_tcp_listening(const char *untrusted, unsigned port);

/* cloud-init's state in a running VM whose agent is up (up to three small reads through the agent
 * until the state is final; then none, the final state is kept for the boot). */
int ready_cloud_init_state(const struct store *st, const char *name, struct ci_status *ret, struct hutch_error *err);

/* The guest port start forwards a free loopback port to, so that `hutch ssh` finds its sshd (both
 * backends): the spec's ssh_port, else 22, for an image or bootc VM on user networking with an ssh
 * key when none of forwards (HOST:GUEST[/proto]) reaches it yet; 0 when no forward is wanted. */
unsigned ready_ssh_forward_wanted(const struct store *st, const struct vm_spec *spec, const char *name,
				  char *const *forwards);

/* Whether `hutch ssh` checks the VM's host key strictly: the key made at create is there and start
 * has not found that the guest could not take it. Otherwise ssh trusts the first key it sees. */
bool ready_host_key_strict(const struct store *st, const char *name);

struct ready_result {
	uint64_t ssh_ms;	/* start -> sshd listening; 0: not waited for */
	uint64_t cloud_init_ms; /* start -> cloud-init done; 0: not waited for */
	bool no_sshd;		/* the image has no sshd: not waited for */
	struct ci_status ci;	/* as last seen */
};

/* After the agent's HELLO: for image VMs, check the guest can take the host key made at create
 * (cloud-init is there and enabled); then wait for sshd and cloud-init as LEVEL asks, until DEADLINE_MS
 * (now_ms() clock), timing from T0_MS. Checks that the guest presents the host key made at create
 * and falls back to trusting the first key (with a warning) where it cannot (no cloud-init).
 * Warnings (failed cloud-init modules, the host key) are logged; -ETIMEDOUT names what was late. */
int ready_wait(const struct store *st, const struct vm_spec *spec, const char *name, enum start_wait level,
	       uint64_t t0_ms, uint64_t deadline_ms, struct ready_result *ret, struct hutch_error *err);
void ready_result_release(struct ready_result *r);
