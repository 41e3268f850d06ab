/* The hidden __monitor verb: `hutch __monitor NAME LOCKFD NOTIFYFD TIMEOUT_MS ephemeral|keep`. */
#include "cmd.h"
#include "monitor.h"
#include "virt_watch.h"

#include <string.h>

/* NAME LOCKFD NOTIFYFD, which both hidden verbs start with: the fds the starting hutch passed are
 * ours now, and not for the programs we run. -1 (usage) or EXIT_ERR (the name) when bad. */
static int supervisor_args(struct cmd_ctx *c, char **argv, long long *lock_fd, long long *notify_fd)
{
	if (parse_ll(argv[1], 0, 1 << 20, lock_fd) < 0 || parse_ll(argv[2], -1, 1 << 20, notify_fd) < 0)
		return cmd_usage(c, "internal verb: bad arguments");
	if (store_check_name(argv[0], &c->err) < 0)
		return EXIT_ERR;
	fd_set_cloexec((int)*lock_fd, true);
	if (*notify_fd >= 0)
		fd_set_cloexec((int)*notify_fd, true);
	hutch_log_level = LOG_DEBUG;
	return 0;
}

static int cmd_monitor(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	long long lock_fd, notify_fd, timeout;
	if (argc != 5 || parse_ll(argv[3], 0, 1ll << 40, &timeout) < 0)
		return cmd_usage(c, "internal verb: bad arguments");
	int r = supervisor_args(c, argv, &lock_fd, &notify_fd);
	if (r)
		return r;
	struct monitor_args a = {
		.name = argv[0],
		.lock_fd = (int)lock_fd,
		.notify_fd = (int)notify_fd,
		.boot_timeout_ms = (uint64_t)timeout,
		.ephemeral = strcmp(argv[4], "ephemeral") == 0,
	};
	return monitor_main(&c->store, &a);
}

VERB_DEFINE(monitor, .name = "__monitor", .fn = cmd_monitor, .min_args = 5, .max_args = 5,
	    .args = "NAME LOCKFD NOTIFYFD TIMEOUT_MS ephemeral|keep", .flags = VERB_HIDDEN | VERB_NO_OPTS);

/* `hutch __libvirt-watch NAME LOCKFD NOTIFYFD FLAGS`: the libvirt backend's supervisor (virt_watch.h).
 * FLAGS: e (disposable) or -, the agent as start left it (r ready, w waiting, u unknown), k (KVM) or -. */
static int cmd_libvirt_watch(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	long long lock_fd, notify_fd;
	const char *f = argv[3];
	if (argc != 4 || strlen(f) != 3 || !strchr("rwu", f[1]))
		return cmd_usage(c, "internal verb: bad arguments");
	int r = supervisor_args(c, argv, &lock_fd, &notify_fd);
	if (r)
		return r;
	const char *agent = f[1] == 'r' ? "ready" : f[1] == 'w' ? "waiting" : "unknown";
	return virt_watch_main(&c->store, argv[0], (int)lock_fd, (int)notify_fd, f[0] == 'e', agent, f[2] == 'k');
}

VERB_DEFINE(libvirt_watch, .name = "__libvirt-watch", .fn = cmd_libvirt_watch, .min_args = 4, .max_args = 4,
	    .args = "NAME LOCKFD NOTIFYFD FLAGS", .flags = VERB_HIDDEN | VERB_NO_OPTS);
