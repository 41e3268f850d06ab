#include "cmd.h"
#include "session.h"

#include <getopt.h>
#include <string.h>

/* exec and run share their options: -t/-T/-i/-e/-w/-u, plus --instance (exec) or --rm (run).
 * Options may follow NAME when a "--" ends them. Returns 0, or EXIT_USAGE. */
int cmd_exec_parse(struct cmd_ctx *c, int argc, char **argv, bool is_run, struct exec_cli *ret)
{
	memset(ret, 0, sizeof(*ret));
	int tty_mode = -1;
	static const struct option opts[] = {
		{"tty", no_argument, NULL, 't'},
		{"no-tty", no_argument, NULL, 'T'},
		{"interactive", no_argument, NULL, 'i'},
		{"env", required_argument, NULL, 'e'},
		{"workdir", required_argument, NULL, 'w'},
		{"user", required_argument, NULL, 'u'},
		{"instance", required_argument, NULL, 'N'},
		{"rm", no_argument, NULL, 'R'},
		{0},
	};
	int opt, oargc;
	char optstr[32], **cmdv;
	cmd_command_split(argc, argv, "tTie:w:u:", optstr, sizeof(optstr), &oargc, &cmdv);
	while ((opt = getopt_long(oargc, argv, optstr, opts, NULL)) != -1) {
		switch (opt) {
		case 't':
		case 'T':
			tty_mode = opt == 't';
			break;
		case 'i':
			ret->o.forward_stdin = true;
			break;
		case 'e':
			if (!strchr(optarg, '=') || optarg[0] == '=')
				return cmd_usage(c, "-e: expected K=V, not '%s'", optarg);
			ret->o.env = strv_push(ret->o.env, xstrdup(optarg));
			break;
		case 'w':
			ret->o.cwd = optarg;
			break;
		case 'u':
			ret->o.user = optarg;
			break;
		case 'N':
		case 'R':
			if ((opt == 'R') != is_run)
				return cmd_usage(c, "unknown option '%s'", opt == 'R' ? "--rm" : "--instance");
			if (opt == 'R')
				ret->rm = true;
			else
				ret->instance = optarg;
			break;
		default:
			return cmd_usage(c, "unknown option");
		}
	}
	if (optind >= oargc)
		return cmd_usage(c, "missing %s", is_run ? "VM or template name" : "VM name");
	ret->name = argv[optind++];
	if (cmdv && optind < oargc)
		return cmd_usage(c, "unexpected '%s' before '--'", argv[optind]);
	ret->o.argv = cmdv ? cmdv : argv + optind;
	if (!ret->o.argv[0])
		return cmd_usage(c, "missing command (hutch %s NAME -- CMD...)", is_run ? "run" : "exec");
	/* Like ssh: a pty when both ends are terminals, unless -t/-T say otherwise; stdin is forwarded
	 * when it is not a terminal (a pipe or file), or with -i. */
	ret->o.in_fd = STDIN_FILENO;
	ret->o.out_fd = STDOUT_FILENO;
	ret->o.err_fd = STDERR_FILENO;
	ret->o.tty = tty_mode == 1 || (tty_mode < 0 && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO));
	if (!isatty(STDIN_FILENO))
		ret->o.forward_stdin = true;
	return 0;
}

VERB(exec)
{
	struct exec_cli e;
	int rc = cmd_exec_parse(c, argc, argv, false, &e);
	_cleanup_free_ char *name = NULL;
	if (rc == 0 && cmd_vm_name(c, e.name, e.instance, &name))
		rc = EXIT_ERR;
	int status = 0;
	if (rc == 0)
		rc = exec_session(&c->store, name, &e.o, &status, &c->err) < 0 ? EXIT_ERR : status;
	strv_free(e.o.env);
	return rc;
}
