#include "cmd.h"
#include "session.h"

#include <getopt.h>

VERB(shell)
{
	struct exec_opts o = {0};
	const char *instance = NULL;
	static const struct option opts[] = {
		{"user", required_argument, NULL, 'u'},
		{"instance", required_argument, NULL, 'i'},
		{0},
	};
	int opt;
	while ((opt = getopt_long(argc, argv, "u:i:", opts, NULL)) != -1) {
		switch (opt) {
		case 'u':
			o.user = optarg;
			break;
		case 'i':
			instance = optarg;
			break;
		default:
			return cmd_usage(c, "unknown option");
		}
	}
	if (cmd_check_args(c, argc, optind, 1, 1))
		return EXIT_USAGE;
	_cleanup_free_ char *name = NULL;
	if (cmd_vm_name(c, argv[optind], instance, &name))
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
	if (exec_session(&c->store, name, &o, &status, &c->err) < 0)
		return EXIT_ERR;
	return status;
}
