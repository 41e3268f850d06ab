/* hutch help [VERB]: the verb list, or one verb's usage and options, from the verb tables. */
#include "cmd.h"

void cmd_print_verbs(FILE *f)
{
	fprintf(f, "usage: hutch [--json] [-q] [-v] VERB [ARGS...]\n\nverbs:\n");
	for (size_t i = 0; hutch_verbs[i]; i++)
		if (!(hutch_verbs[i]->flags & VERB_HIDDEN))
			fprintf(f, "  %-10s %s\n", hutch_verbs[i]->name, hutch_verbs[i]->summary);
	fprintf(f, "\n'hutch help VERB' shows a verb's options. 'man hutch' has the rest.\n");
}

static int cmd_help(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	if (argc == 0) {
		cmd_print_verbs(stdout);
		return EXIT_OK;
	}
	const struct verb *v = verb_find(argv[0]);
	if (!v || (v->flags & VERB_HIDDEN))
		return cmd_usage(c, "unknown verb '%s'", argv[0]);
	opt_print_help(stdout, v);
	return EXIT_OK;
}

VERB_DEFINE(help, .name = "help", .fn = cmd_help, .min_args = 0, .max_args = 1, .args = "[VERB]", .complete = "verb",
	    .summary = "show the verbs, or a verb's usage and options");
