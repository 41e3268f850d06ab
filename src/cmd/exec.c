#include "cmd.h"
#include "session.h"

#include <string.h>

static int set_tty(struct cmd_ctx *c, void *opts, const struct opt *o, const char *arg)
{
	((struct exec_cli *)opts)->tty_mode = o->short_name == 't';
	return 0;
}

/* exec and run share these; exec adds --instance, run --rm. */
#define EXEC_OPTS                                                                                                    \
	OPT_CALLBACK('t', "tty", NULL, set_tty, "always use a pty"),                                                 \
		OPT_CALLBACK('T', "no-tty", NULL, set_tty, "never use a pty"),                                       \
		OPT_BOOL('i', "interactive", struct exec_cli, o.forward_stdin, "forward stdin from a terminal too"), \
		OPT_STRV('e', "env", struct exec_cli, o.env, "K=V", "set an environment variable"),                  \
		OPT_STRING('w', "workdir", struct exec_cli, o.cwd, "DIR", "run in DIR"),                             \
		OPT_STRING('u', "user", struct exec_cli, o.user, "USER", "run as USER")

static const struct opt exec_opts[] = {
	EXEC_OPTS,
	OPT_STRING(0, "instance", struct exec_cli, instance, "INSTANCE", "act on the instance NAME-INSTANCE"),
	OPT_END(),
};

static int run_accel(struct cmd_ctx *c, void *opts, const struct opt *o, const char *arg)
{
	return cmd_parse_accel(c, arg, &((struct exec_cli *)opts)->accel);
}

const struct opt cmd_run_opts[] = {
	OPT_BOOL(0, "rm", struct exec_cli, rm, "in a fresh instance, removed when the program ends"),
	OPT_BOOL(0, "cold", struct exec_cli, cold, "with --rm: boot, even when a warm template could be restored"),
	OPT_CALLBACK(0, "accel", "MODE", run_accel, "auto, kvm or tcg for the VM run creates",
		     .complete = "auto kvm tcg"),
	OPT_STRV(0, "share", struct exec_cli, shares, "HOST:GUEST[:ro]",
		 "share a host dir at GUEST (repeatable), for the VM run creates", .complete = "dir"),
	OPT_STRING(0, "backend", struct exec_cli, backend, "qemu|libvirt", "the backend of the VM run creates",
		   .complete = "qemu libvirt"),
	OPT_STRING(0, "connect", struct exec_cli, uri, "URI", "libvirt's URI for the VM run creates"),
	OPT_STRING(0, "flatpak", struct exec_cli, flatpak, "APP-ID",
		   "run a host-installed flatpak app in a disposable instance of NAME"),
	OPT_BOOL(0, "shared-data", struct exec_cli, shared_data, "with --flatpak: the host's own app data dir"),
	EXEC_OPTS,
	OPT_END(),
};

const struct exec_cli cmd_exec_defaults = {.tty_mode = -1};

int cmd_exec_finish(struct cmd_ctx *c, struct exec_cli *e, int argc, char **argv)
{
	for (char **v = e->o.env; v && *v; v++)
		if (!strchr(*v, '=') || (*v)[0] == '=')
			return cmd_usage(c, "-e: expected K=V, not '%s'", *v);
	e->o.argv = argv + 1;
	if (argc < 2)
		return cmd_usage(c, "missing command (hutch %s NAME -- CMD...)", c->verb);
	/* Like ssh: a pty when both ends are terminals, unless -t/-T say otherwise; stdin is forwarded
	 * when it is not a terminal (a pipe or file), or with -i. */
	e->o.in_fd = STDIN_FILENO;
	e->o.out_fd = STDOUT_FILENO;
	e->o.err_fd = STDERR_FILENO;
	e->o.tty = e->tty_mode == 1 || (e->tty_mode < 0 && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO));
	if (!isatty(STDIN_FILENO))
		e->o.forward_stdin = true;
	return 0;
}

static int cmd_exec(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	struct exec_cli *e = opts;
	int rc = cmd_exec_finish(c, e, argc, argv);
	if (rc)
		return rc;
	_cleanup_free_ char *name = NULL;
	if (cmd_vm_name(c, argv[0], e->instance, &name))
		return EXIT_ERR;
	int status = 0;
	int r = exec_session(&c->store, name, &e->o, &status, &c->err);
	return exec_exit_code(r, status);
}

VERB_DEFINE(exec, .name = "exec", .fn = cmd_exec, .opts = exec_opts, .opts_size = sizeof(struct exec_cli),
	    .defaults = &cmd_exec_defaults, .min_args = 1, .max_args = -1, .args = "NAME [--] CMD...",
	    .complete = "vm;cmd", .summary = "run a command in a running VM", .flags = VERB_COMMAND);
