/* The hidden __monitor verb: `hutch __monitor NAME LOCKFD NOTIFYFD TIMEOUT_MS ephemeral|keep`. */
#include "cmd.h"
#include "monitor.h"

#include <string.h>

static int cmd_monitor(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	long long lock_fd, notify_fd, timeout;
	if (argc != 5 || parse_ll(argv[1], 0, 1 << 20, &lock_fd) < 0 ||
	    parse_ll(argv[2], -1, 1 << 20, &notify_fd) < 0 || parse_ll(argv[3], 0, 1ll << 40, &timeout) < 0)
		return cmd_usage(c, "internal verb: bad arguments");
	if (store_check_name(argv[0], &c->err) < 0)
		return EXIT_ERR;
	fd_set_cloexec((int)lock_fd, true);
	if (notify_fd >= 0)
		fd_set_cloexec((int)notify_fd, true);
	struct monitor_args a = {
		.name = argv[0],
		.lock_fd = (int)lock_fd,
		.notify_fd = (int)notify_fd,
		.boot_timeout_ms = (uint64_t)timeout,
		.ephemeral = strcmp(argv[4], "ephemeral") == 0,
	};
	hutch_log_level = LOG_DEBUG;
	return monitor_main(&c->store, &a);
}

VERB_DEFINE(monitor, .name = "__monitor", .fn = cmd_monitor, .min_args = 5, .max_args = 5,
	    .args = "NAME LOCKFD NOTIFYFD TIMEOUT_MS ephemeral|keep", .flags = VERB_HIDDEN | VERB_NO_OPTS);
