/* hutch: rootless, declarative virtual machines. main parses global options, dispatches through
 * one verb table, and prints an error once. */
#include "cmd/cmd.h"

#include <getopt.h>
#include <stdarg.h>
#include <string.h>

static const struct verb verbs[] = {
	{"create", cmd_create, 1, 1,
	 "create NAME [--template micro | --from FILE.yml | --image URL|NAME [--checksum SPEC] [--pull]] [-i INSTANCE] [--memory SIZE] [--cpus N] [--disk SIZE]",
	 "define a VM from a template, a spec file, or hutch.yml"},
	{"build", cmd_build, 1, 1, "build NAME [--from FILE.yml | --image URL|NAME [--checksum SPEC]]",
	 "fetch and verify a VM's image without creating it"},
	{"start", cmd_start, 1, 1, "start NAME [-i INSTANCE] [--timeout SEC]",
	 "boot a VM; returns when its agent answers"},
	{"stop", cmd_stop, 1, 1, "stop NAME [-i INSTANCE] [--force] [--timeout SEC]",
	 "shut a VM down (agent, ACPI, quit, kill)"},
	{"destroy", cmd_destroy, 1, 1, "destroy NAME [-i INSTANCE] [--disk] [--force]", "remove a VM"},
	{"list", cmd_list, 0, 0, "list [-a] [--json]", "list VMs with state, accel, memory, cpus and uptime"},
	{"inspect", cmd_inspect, 1, 1, "inspect NAME [-i INSTANCE] [--json] [--render]",
	 "show a VM, or the exact QEMU argv (--render)"},
	{"console", cmd_console, 1, 1, "console NAME [-i INSTANCE]", "attach to the serial console (Ctrl-] detaches)"},
	{"logs", cmd_logs, 1, 1, "logs NAME [-i INSTANCE] [-f]", "print the serial console log"},
	{"exec", cmd_exec, 1, -1,
	 "exec NAME [-t|-T] [-i] [-e K=V]... [-w DIR] [-u USER] [--instance INSTANCE] -- CMD...",
	 "run a command in a running VM"},
	{"shell", cmd_shell, 1, 1, "shell NAME [-i INSTANCE] [-u USER]", "interactive login shell in a running VM"},
	{"run", cmd_run, 1, -1, "run [--rm] [-t|-T] [-i] [-e K=V]... [-w DIR] [-u USER] NAME|TEMPLATE [--] CMD...",
	 "run a program, starting the VM on demand"},
	{"cp", cmd_cp, 2, 2, "cp [-r] SRC DST   (one side is NAME:/path)", "copy files into or out of a VM"},
	{"ssh", cmd_ssh, 1, -1, "ssh NAME [-l USER] [-p PORT] [-i INSTANCE] [-- CMD...]",
	 "ssh into a VM with its key, user and forwarded port"},
	{"image", cmd_image, 1, -1, "image ls | pull URL|NAME [--checksum SPEC] | rm [--force] IMAGE... | prune",
	 "manage the image cache"},
	{"port", cmd_port, 2, 3, "port NAME add|rm HOST:GUEST[/tcp|/udp] | port NAME ls",
	 "change port forwards of a running VM"},
	{"doctor", cmd_doctor, 0, 0, "doctor", "check this host: QEMU, KVM, kernel, agent"},
	{"help", cmd_help, 0, 1, "help [VERB]", "show help"},
	{"__monitor", cmd_monitor, 5, 5, NULL, NULL}, /* hidden: the per-VM monitor */
};

static const struct verb *find_verb(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
		if (strcmp(verbs[i].name, name) == 0)
			return &verbs[i];
	return NULL;
}

static void print_usage(FILE *f)
{
	fprintf(f, "usage: hutch [--json] [-q] [-v] VERB [ARGS...]\n\nverbs:\n");
	for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
		if (verbs[i].usage)
			fprintf(f, "  %-10s %s\n", verbs[i].name, verbs[i].summary);
	fprintf(f, "\n'hutch help VERB' shows a verb's options. 'man hutch' has the rest.\n");
}

VERB(help)
{
	if (argc < 2) {
		print_usage(stdout);
		return EXIT_OK;
	}
	const struct verb *v = find_verb(argv[1]);
	if (!v || !v->usage)
		return cmd_usage(c, "unknown verb '%s'", argv[1]);
	printf("usage: hutch %s\n\n%s\n", v->usage, v->summary);
	return EXIT_OK;
}

int cmd_usage(struct cmd_ctx *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "hutch: %s%s", c->verb ? c->verb : "", c->verb ? ": " : "");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	const struct verb *v = c->verb ? find_verb(c->verb) : NULL;
	if (v && v->usage)
		fprintf(stderr, "usage: hutch %s\n", v->usage);
	return EXIT_USAGE;
}

int cmd_check_args(struct cmd_ctx *c, int argc, int optind_, int min, int max)
{
	int n = argc - optind_;
	if (n < min)
		return cmd_usage(c, "missing argument");
	if (max >= 0 && n > max)
		return cmd_usage(c, "too many arguments");
	return 0;
}

int main(int argc, char **argv)
{
	struct cmd_ctx c = {0};
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'J'},    {"quiet", no_argument, NULL, 'q'},
		{"verbose", no_argument, NULL, 'v'}, {"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},    {0},
	};
	int o;
	/* '+': stop at the verb; its options are its own. */
	while ((o = getopt_long(argc, argv, "+qvh", opts, NULL)) != -1) {
		switch (o) {
		case 'J':
			c.json = true;
			break;
		case 'q':
			c.quiet = true;
			break;
		case 'v':
			c.verbose++;
			break;
		case 'V':
			printf("hutch %s\n", HUTCH_VERSION);
			return EXIT_OK;
		case 'h':
			print_usage(stdout);
			return EXIT_OK;
		default:
			print_usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		print_usage(stderr);
		return EXIT_USAGE;
	}
	hutch_log_level = c.quiet ? LOG_QUIET : (c.verbose ? LOG_INFO + c.verbose - 1 : LOG_WARN);
	const struct verb *v = find_verb(argv[optind]);
	if (!v) {
		fprintf(stderr, "hutch: unknown verb '%s' (see 'hutch help')\n", argv[optind]);
		return EXIT_USAGE;
	}
	c.verb = v->name;
	if (store_open(&c.store, &c.err) < 0) {
		fprintf(stderr, "hutch: %s\n", c.err.msg);
		return EXIT_ERR;
	}
	/* The verb sees its own argv: argv[0] is the verb name. */
	optind++;
	int vargc = argc - optind + 1;
	char **vargv = argv + optind - 1;
	optind = 0; /* 0 fully re-initialises getopt, which main used with '+' */
	int rc = v->fn(vargc, vargv, &c);
	if (c.err.msg) {
		if (c.subject)
			fprintf(stderr, "hutch: %s '%s': %s\n", v->name, c.subject, c.err.msg);
		else
			fprintf(stderr, "hutch: %s: %s\n", v->name, c.err.msg);
		if (rc == EXIT_OK)
			rc = EXIT_ERR;
	}
	hutch_error_clear(&c.err);
	free(c.subject);
	store_release(&c.store);
	return rc;
}
