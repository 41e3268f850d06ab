#include "cmd.h"
#include "session.h"

#include <getopt.h>
#include <string.h>

/* Shared by exec and run: -t/-T/-i/-e/-w/-u. Returns 0, or EXIT_USAGE. */
int cmd_exec_option(struct cmd_ctx *c, int opt, struct exec_opts *o, int *tty_mode);

int cmd_exec_option(struct cmd_ctx *c, int opt, struct exec_opts *o, int *tty_mode)
{
	switch (opt) {
	case 't':
		*tty_mode = 1;
		return 0;
	case 'T':
		*tty_mode = 0;
		return 0;
	case 'I':
		o->forward_stdin = true;
		return 0;
	case 'e':
		if (!strchr(optarg, '=') || optarg[0] == '=')
			return cmd_usage(c, "-e: expected K=V, not '%s'", optarg);
		o->env = strv_push(o->env, xstrdup(optarg));
		return 0;
	case 'w':
		o->cwd = optarg;
		return 0;
	case 'u':
		o->user = optarg;
		return 0;
	default:
		return cmd_usage(c, "unknown option");
	}
}

/* Like ssh: a pty when both ends are terminals, unless -t/-T say otherwise; stdin is forwarded
 * when it is not a terminal (a pipe or file), or with -i. */
void cmd_exec_finish(struct exec_opts *o, int tty_mode);
void cmd_exec_finish(struct exec_opts *o, int tty_mode)
{
	o->in_fd = STDIN_FILENO;
	o->out_fd = STDOUT_FILENO;
	o->err_fd = STDERR_FILENO;
	bool ttys = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
	o->tty = tty_mode == 1 || (tty_mode < 0 && ttys);
	if (!isatty(STDIN_FILENO))
		o->forward_stdin = true;
}

VERB(exec)
{
	struct exec_opts o = {0};
	int tty_mode = -1;
	const char *instance = NULL;
	static const struct option opts[] = {
		{"tty", no_argument, NULL, 't'},
		{"no-tty", no_argument, NULL, 'T'},
		{"interactive", no_argument, NULL, 'I'},
		{"env", required_argument, NULL, 'e'},
		{"workdir", required_argument, NULL, 'w'},
		{"user", required_argument, NULL, 'u'},
		{"instance", required_argument, NULL, 'N'},
		{0},
	};
	int opt, oargc;
	char optstr[32], **cmdv;
	cmd_command_split(argc, argv, "tTie:w:u:", optstr, sizeof(optstr), &oargc, &cmdv);
	/* -i is docker's --interactive here; the instance is --instance */
	while ((opt = getopt_long(oargc, argv, optstr, opts, NULL)) != -1) {
		if (opt == 'N') {
			instance = optarg;
			continue;
		}
		if (cmd_exec_option(c, opt == 'i' ? 'I' : opt, &o, &tty_mode)) {
			strv_free(o.env);
			return EXIT_USAGE;
		}
	}
	if (optind >= oargc) {
		strv_free(o.env);
		return cmd_usage(c, "missing VM name");
	}
	const char *vm = argv[optind++];
	if (cmdv && optind < oargc) {
		strv_free(o.env);
		return cmd_usage(c, "unexpected '%s' before '--'", argv[optind]);
	}
	if (!cmdv)
		cmdv = argv + optind;
	if (!*cmdv) {
		strv_free(o.env);
		return cmd_usage(c, "missing command (hutch exec NAME -- CMD...)");
	}
	_cleanup_free_ char *name = NULL;
	if (cmd_vm_name(c, vm, instance, &name)) {
		strv_free(o.env);
		return EXIT_ERR;
	}
	o.argv = cmdv;
	cmd_exec_finish(&o, tty_mode);
	int status = 0;
	int r = exec_session(&c->store, name, &o, &status, &c->err);
	strv_free(o.env);
	return r < 0 ? EXIT_ERR : status;
}
