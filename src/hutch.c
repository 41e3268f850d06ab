/* hutch: rootless, declarative virtual machines. main parses global options, dispatches through
 * the verb table (src/cmd/verbs.c), and prints an error once. */
#include "cmd/cmd.h"

#include <getopt.h>
#include <string.h>

int main(int argc, char **argv)
{
	struct cmd_ctx c = {0};
	static const struct option global_opts[] = {
		{"json", no_argument, NULL, 'J'},    {"quiet", no_argument, NULL, 'q'},
		{"verbose", no_argument, NULL, 'v'}, {"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},    {0},
	};
	int o;
	/* '+': stop at the verb; its options are its own. */
	while ((o = getopt_long(argc, argv, "+qvh", global_opts, NULL)) != -1) {
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
			cmd_print_verbs(stdout);
			return EXIT_OK;
		default:
			cmd_print_verbs(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		cmd_print_verbs(stderr);
		return EXIT_USAGE;
	}
	hutch_log_level = c.quiet ? LOG_QUIET : (c.verbose ? LOG_INFO + c.verbose - 1 : LOG_WARN);
	const struct verb *v = verb_find(argv[optind]);
	if (!v) {
		fprintf(stderr, "hutch: unknown verb '%s' (see 'hutch help')\n", argv[optind]);
		return EXIT_USAGE;
	}
	c.verb = v->name;
	/* The verb's options struct: zeroed, its defaults, then filled from argv by its table. */
	void *opts = v->opts_size ? xcalloc(1, v->opts_size) : NULL;
	if (opts && v->defaults)
		memcpy(opts, v->defaults, v->opts_size);
	const struct verb *sub = NULL;
	int pargc = 0;
	char **pargv = NULL;
	int rc = opt_parse(&c, v, opts, argc - optind, argv + optind, &sub, &pargc, &pargv);
	if (rc < 0) {
		rc = EXIT_OK; /* --help */
	} else if (rc == 0) {
		if (store_open(&c.store, &c.err) < 0) {
			fprintf(stderr, "hutch: %s\n", c.err.msg);
			rc = EXIT_ERR;
			goto out;
		}
		rc = (sub ? sub : v)->fn(&c, opts, pargc, pargv);
	}
	if (c.err.msg) {
		if (c.subject)
			fprintf(stderr, "hutch: %s '%s': %s\n", v->name, c.subject, c.err.msg);
		else
			fprintf(stderr, "hutch: %s: %s\n", v->name, c.err.msg);
		if (rc == EXIT_OK)
			rc = EXIT_ERR;
	}
out:
	opt_release(v, opts);
	free(opts);
	hutch_error_clear(&c.err);
	free(c.subject);
	store_release(&c.store);
	return rc;
}
