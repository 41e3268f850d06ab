#include "cmd.h"

#include <fcntl.h>
#include <string.h>

struct logs_cli {
	const char *instance;
	bool follow;
};

static const struct opt logs_opts[] = {
	OPT_INSTANCE(struct logs_cli),
	OPT_BOOL('f', "follow", struct logs_cli, follow, "keep printing while the VM runs"),
	OPT_END(),
};

static int cmd_logs(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	const struct logs_cli *o = opts;
	bool follow = o->follow;
	_cleanup_free_ char *name = NULL;
	if (cmd_vm_name(c, argv[0], o->instance, &name))
		return EXIT_ERR;
	if (!store_vm_exists(&c->store, name)) {
		hutch_error_set(&c->err, ENOENT, "no VM named '%s'", name);
		return EXIT_ERR;
	}
	_cleanup_free_ char *path = store_vm_file(&c->store, name, "console.log");
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && !(errno == ENOENT && follow)) {
		if (errno == ENOENT)
			hutch_error_set(&c->err, ENOENT, "no console log yet (it has never been started)");
		else
			hutch_error_set(&c->err, errno, "cannot open '%s': %s", path, strerror(errno));
		return EXIT_ERR;
	}
	char buf[65536];
	for (;;) {
		if (fd < 0)
			fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf)) : 0;
		if (n > 0) {
			if (write_all(STDOUT_FILENO, buf, (size_t)n) < 0)
				return EXIT_ERR;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (!follow)
			break;
		/* Follow while the VM runs; a drained log of a stopped VM ends the stream. */
		if (!store_is_running(&c->store, name)) {
			if (fd >= 0 && (n = read(fd, buf, sizeof(buf))) > 0) {
				write_all(STDOUT_FILENO, buf, (size_t)n);
				continue;
			}
			break;
		}
		usleep(100000);
	}
	return EXIT_OK;
}

VERB_DEFINE(logs, .name = "logs", .fn = cmd_logs, .opts = logs_opts, .opts_size = sizeof(struct logs_cli),
	    .min_args = 1, .max_args = 1, .args = "NAME", .complete = "vm", .summary = "print the serial console log");
