#include "cmd.h"
#include "session.h"

struct shell_cli {
	struct exec_opts o;
	const char *instance;
};

static const struct opt shell_opts[] = {
	OPT_INSTANCE(struct shell_cli),
	OPT_STRING('u', "user", struct shell_cli, o.user, "USER", "log in as USER"),
	OPT_END(),
};

static int cmd_shell(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	struct shell_cli *s = opts;
	struct exec_opts o = s->o;
	_cleanup_free_ char *name = NULL;
	if (cmd_vm_name(c, argv[0], s->instance, &name))
		return EXIT_ERR;
	char *argv_shell[] = {"", NULL}; /* the guest user's login shell */
	o.argv = argv_shell;
	o.login = true;
	o.tty = true;
	o.forward_stdin = true;
	o.in_fd = STDIN_FILENO;
	o.out_fd = STDOUT_FILENO;
	o.err_fd = STDERR_FILENO;
	int status = 0;
	int r = exec_session(&c->store, name, &o, &status, &c->err);
	return exec_exit_code(r, status);
}

VERB_DEFINE(shell, .name = "shell", .fn = cmd_shell, .opts = shell_opts, .opts_size = sizeof(struct shell_cli),
	    .min_args = 1, .max_args = 1, .args = "NAME", .complete = "vm",
	    .summary = "interactive login shell in a running VM");
