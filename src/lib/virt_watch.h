/* The libvirt backend's per-VM supervisor: `hutch __libvirt-watch`, spawned by start like the qemu
 * backend's monitor. It holds the VM's run lock while the domain runs (a VM is running exactly when
 * its lock is held), follows the domain's lifecycle events, and applies auto_shutdown: on_app_exit
 * and idle. It does not hold the agent channel, which libvirt gives one client at a time: sessions
 * (exec, shell, run, cp) register with it over a unix socket for as long as they last, and before
 * an idle stop it asks the agent itself (STAT) whether programs still run in the guest. */
#pragma once
#include "backend.h"
#include "store.h"
#include "util.h"

#define VIRT_WATCH_SOCK "watch.sock"

/* start: spawn the supervisor for vm's running domain, handing it lock_fd (the run lock); returns
 * once it listens. agent: what start knows of the agent (ready: it heard HELLO, waiting, unknown). */
int virt_watch_spawn(struct vm *vm, int lock_fd, bool ephemeral, const char *agent, bool kvm, struct hutch_error *err);
/* The hidden verb's body; returns the process exit code. */
int virt_watch_main(struct store *st, const char *name, int lock_fd, int notify_fd, bool ephemeral, const char *agent,
		    bool kvm);

/* A session (exec_session) registers for its whole life: the returned fd is closed when it ends.
 * -1 when no supervisor answers (nothing to tell). app: counts for on_app_exit; run: the `run`
 * client of a disposable VM. */
int virt_watch_register(const struct store *st, const char *name, bool app, bool run);

struct virt_watch_status {
	bool kvm;
	char agent[32]; /* ready waiting unresponsive, or unknown */
	int64_t agent_since;
	char agent_why[160];
	int sessions;
};
/* What the supervisor knows (list, status). -ENOTCONN when none runs for NAME. */
int virt_watch_status(const struct store *st, const char *name, struct virt_watch_status *ret);
