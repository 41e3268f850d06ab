#include "cmd.h"

#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>

#define DETACH_KEY 0x1d /* Ctrl-] */

struct console_cli {
	const char *instance;
};

static const struct opt console_opts[] = {
	OPT_INSTANCE(struct console_cli),
	OPT_END(),
};

static int cmd_console(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	const struct console_cli *o = opts;
	_cleanup_free_ char *name = NULL;
	if (cmd_vm_name(c, argv[0], o->instance, &name))
		return EXIT_ERR;
	if (!store_is_running(&c->store, name)) {
		hutch_error_set(&c->err, ENOTCONN, "not running (see 'hutch logs %s' for the last boot)", name);
		return EXIT_ERR;
	}
	_cleanup_free_ char *path = store_run_file(&c->store, name, "console.sock");
	if (store_check_sun_path(path, &c->err) < 0)
		return EXIT_ERR;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strcpy(sa.sun_path, path);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		hutch_error_set(&c->err, errno, "cannot connect to the console at '%s': %s", path, strerror(errno));
		return EXIT_ERR;
	}
	bool tty = isatty(STDIN_FILENO);
	struct termios saved, raw;
	if (tty) {
		tcgetattr(STDIN_FILENO, &saved);
		raw = saved;
		cfmakeraw(&raw);
		tcsetattr(STDIN_FILENO, TCSANOW, &raw);
		fprintf(stderr, "connected to %s's console; Ctrl-] detaches\r\n", name);
	}
	bool in_open = true;
	for (;;) {
		struct pollfd p[2] = {{.fd = fd, .events = POLLIN},
				      {.fd = in_open ? STDIN_FILENO : -1, .events = POLLIN}};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		char buf[4096];
		if (p[0].revents) {
			ssize_t n = read(fd, buf, sizeof(buf));
			if (n <= 0)
				break;
			write_all(STDOUT_FILENO, buf, (size_t)n);
		}
		if (p[1].revents) {
			ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
			if (n <= 0) {
				in_open = false;
				continue;
			}
			char *k = tty ? memchr(buf, DETACH_KEY, (size_t)n) : NULL;
			if (k) {
				write_all(fd, buf, (size_t)(k - buf));
				break;
			}
			write_all(fd, buf, (size_t)n);
		}
	}
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSANOW, &saved);
		fprintf(stderr, "\ndetached from %s\n", name);
	}
	return EXIT_OK;
}

VERB_DEFINE(console, .name = "console", .fn = cmd_console, .opts = console_opts,
	    .opts_size = sizeof(struct console_cli), .min_args = 1, .max_args = 1, .args = "NAME", .complete = "vm",
	    .summary = "attach to the serial console (Ctrl-] detaches)");
