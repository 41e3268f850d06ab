/* Verbs declare their options as data (git's parse-options.h). One parser fills the verb's options
 * struct from a static table; the same table prints `hutch help VERB` and generates the bash
 * completion, so neither can drift from the code.
 *
 * How a verb is written (src/cmd/pause.c, say):
 *
 *	struct pause_cli {
 *		const char *instance;
 *		uint64_t timeout_ms;
 *		bool force;
 *	};
 *	static const struct opt pause_opts[] = {
 *		OPT_INSTANCE(struct pause_cli),
 *		OPT_DURATION(0, "timeout", struct pause_cli, timeout_ms, "SEC", "give up after SEC"),
 *		OPT_BOOL('f', "force", struct pause_cli, force, "pause even when busy"),
 *		OPT_JSON(),
 *		OPT_END(),
 *	};
 *	static int cmd_pause(struct cmd_ctx *c, void *opts, int argc, char **argv)
 *	{
 *		struct pause_cli *o = opts; // zeroed, then filled; argv[0..argc) = positionals only
 *		...
 *	}
 *	VERB_DEFINE(pause, .name = "pause", .fn = cmd_pause, .opts = pause_opts,
 *		    .opts_size = sizeof(struct pause_cli), .min_args = 1, .max_args = 1, .args = "NAME",
 *		    .complete = "vm", .summary = "pause a running VM");
 *
 * then add `extern const struct verb verb_pause;` to cmd.h, `&verb_pause` to the table in verbs.c, the
 * file to cmd_sources in meson.build, and the verb and its long options to its entry in docs/hutch.1.
 * Regenerate the completion with `build/hutch completion bash > completion/hutch.bash`. Two unit tests
 * check both (tests/cli/); `hutch completion list` prints what the man page must name.
 *
 * Any macro takes optional trailing designated initializers: `.complete = "file"` (a hint for the
 * option's argument) or `.flags = OPT_HIDDEN`. A completion hint is a space-separated list of words
 * and keywords: vm (VM names), file, dir, cmd (commands), verb, image (catalog names), vmpath
 * (files and NAME:); "vm micro" offers the VMs and the word micro. Usage errors print
 * "hutch: VERB: --opt: why" and the usage line, and exit 2; a callback rejects with cmd_usage(). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct cmd_ctx;
struct opt;

/* Called for OPT_CALLBACK with the option's argument (NULL for a flag). Returns 0, or the result of
 * cmd_usage() (EXIT_USAGE) to reject the value. */
typedef int (*opt_cb)(struct cmd_ctx *c, void *opts, const struct opt *o, const char *arg);

enum opt_type {
	OPT_T_END = 0,
	OPT_T_BOOL,	/* bool field set to true */
	OPT_T_STRING,	/* const char * field, pointing into argv */
	OPT_T_STRV,	/* char ** field, repeatable; strv_free'd after fn (NULL it to keep it) */
	OPT_T_SIZE,	/* uint64_t bytes, parse_size: 512M, 2G */
	OPT_T_UINT,	/* unsigned field, checked against min..max */
	OPT_T_DURATION, /* uint64_t milliseconds, parse_duration_ms: 90, 90s, 5m */
	OPT_T_ENUM,	/* int field: index into names[] */
	OPT_T_CALLBACK, /* cb decides; offset is unused */
	OPT_T_JSON,	/* sets c->json; no field */
};

enum {
	OPT_HIDDEN = 1 << 0, /* parsed, but left out of help and completion */
};

struct opt {
	enum opt_type type;
	int short_name; /* 0: none */
	const char *long_name;
	size_t offset;	  /* into the verb's options struct */
	const char *argh; /* the argument's name in help ("SIZE"); NULL: a flag */
	const char *help;
	const char *complete;	  /* hint for the argument, see above */
	long long min, max;	  /* OPT_UINT */
	const char *const *names; /* OPT_ENUM, NULL-terminated */
	opt_cb cb;
	unsigned flags;
};

/* Checks at compile time that FIELD has the type the parser writes. */
#define OPT_FIELD_(T, f, ftype) \
	(offsetof(T, f) + 0 * sizeof(char[1 - 2 * !__builtin_types_compatible_p(__typeof__(((T *)0)->f), ftype)]))

#define OPT_BOOL(s, l, T, f, h, ...)                                                                       \
	{                                                                                                  \
		.type = OPT_T_BOOL, .short_name = (s), .long_name = (l), .offset = OPT_FIELD_(T, f, bool), \
		.help = (h), __VA_ARGS__                                                                   \
	}
#define OPT_STRING(s, l, T, f, a, h, ...)                                                                            \
	{                                                                                                            \
		.type = OPT_T_STRING, .short_name = (s), .long_name = (l), .offset = OPT_FIELD_(T, f, const char *), \
		.argh = (a), .help = (h), __VA_ARGS__                                                                \
	}
#define OPT_STRV(s, l, T, f, a, h, ...)                                                                       \
	{                                                                                                     \
		.type = OPT_T_STRV, .short_name = (s), .long_name = (l), .offset = OPT_FIELD_(T, f, char **), \
		.argh = (a), .help = (h), __VA_ARGS__                                                         \
	}
#define OPT_SIZE(s, l, T, f, h, ...)                                                                           \
	{                                                                                                      \
		.type = OPT_T_SIZE, .short_name = (s), .long_name = (l), .offset = OPT_FIELD_(T, f, uint64_t), \
		.argh = "SIZE", .help = (h), __VA_ARGS__                                                       \
	}
#define OPT_UINT(s, l, T, f, a, lo, hi, h, ...)                                                                \
	{                                                                                                      \
		.type = OPT_T_UINT, .short_name = (s), .long_name = (l), .offset = OPT_FIELD_(T, f, unsigned), \
		.argh = (a), .min = (lo), .max = (hi), .help = (h), __VA_ARGS__                                \
	}
#define OPT_DURATION(s, l, T, f, a, h, ...)                                                                        \
	{                                                                                                          \
		.type = OPT_T_DURATION, .short_name = (s), .long_name = (l), .offset = OPT_FIELD_(T, f, uint64_t), \
		.argh = (a), .help = (h), __VA_ARGS__                                                              \
	}
#define OPT_ENUM(s, l, T, f, a, nm, h, ...)                                                                            \
	{                                                                                                              \
		.type = OPT_T_ENUM, .short_name = (s), .long_name = (l), .offset = OPT_FIELD_(T, f, int), .argh = (a), \
		.names = (nm), .help = (h), __VA_ARGS__                                                                \
	}
/* a == NULL: a flag, fn gets arg NULL. */
#define OPT_CALLBACK(s, l, a, fn, h, ...)                                                                          \
	{                                                                                                          \
		.type = OPT_T_CALLBACK, .short_name = (s), .long_name = (l), .argh = (a), .cb = (fn), .help = (h), \
		__VA_ARGS__                                                                                        \
	}
#define OPT_JSON()                                                            \
	{                                                                     \
		.type = OPT_T_JSON, .long_name = "json", .help = "print JSON" \
	}
/* The common -i/--instance INSTANCE; the struct needs `const char *instance`. */
#define OPT_INSTANCE(T) OPT_STRING('i', "instance", T, instance, "INSTANCE", "act on the instance NAME-INSTANCE")
#define OPT_END()                 \
	{                         \
		.type = OPT_T_END \
	}

/* Verb flags. */
enum {
	VERB_HIDDEN = 1 << 0, /* not in help or completion (__monitor) */
	/* VERB NAME [--] CMD...: without "--" options stop at NAME and the rest is the command; with "--"
	 * options may sit anywhere before it and only NAME may. argv = NAME then the command. */
	VERB_COMMAND = 1 << 1,
	VERB_NO_OPTS = 1 << 2, /* argv is passed as it is, nothing parsed as an option (__monitor's -1) */
};

struct verb {
	const char *name;
	int (*fn)(struct cmd_ctx *c, void *opts, int argc, char **argv); /* argv: positionals only */
	const struct opt *opts;						 /* OPT_END-terminated; NULL: none */
	size_t opts_size; /* the dispatcher allocates and zeroes this much, and frees it */
	/* Defaults, before parsing: opts_size bytes copied from defaults (a static const options struct:
	 * start's 120 s timeout), or NULL. */
	const void *defaults;
	int min_args, max_args; /* positionals, checked by the parser; max -1 = unlimited */
	const char *args;	/* synopsis of the positionals: "NAME", "SRC DST" */
	/* Positional completion hints (see above); ';' separates successive positions and the last
	 * repeats: "vm;cmd" is a VM name, then commands. */
	const char *complete;
	const char *summary;
	unsigned flags;
	/* VERB [ARGS before it] SUB ...: `image ls`, `port NAME add`. sub_at is how many positionals
	 * precede the subcommand word; the parent's fn is NULL. A subcommand's opts table fills the
	 * parent's options struct (its own opts_size and defaults are unused) and the parent's
	 * options are accepted after it too. Its min_args/max_args count the positionals after the subcommand word;
	 * its fn gets all positionals but the subcommand word. The array ends with a NULL name. */
	const struct verb *subs;
	int sub_at;
};

/* `const struct verb verb_ID = {...}` in a form clang-format packs onto a few lines (it gives each
 * field of a plain designated initializer its own line); both spellings are the same thing. */
#define VERB_DEFINE(id, ...) const struct verb verb_##id = {__VA_ARGS__}
/* One entry of a subs array, packed the same way. */
#define VERB_SUB(...)       \
	{                   \
		__VA_ARGS__ \
	}

/* Parse argv (argv[0] is the verb word) for verb v into opts (already zeroed and initialised). On
 * success returns 0, sets *ret_sub to the chosen subcommand (or NULL), and *ret_argc and *ret_argv to the
 * positionals. Otherwise prints the usage error and returns EXIT_USAGE. --help prints help and
 * returns -1 (the caller exits 0). */
int opt_parse(struct cmd_ctx *c, const struct verb *v, void *opts, int argc, char **argv, const struct verb **ret_sub,
	      int *ret_argc, char ***ret_argv);
/* Free what the parser allocated in opts (OPT_STRV lists). */
void opt_release(const struct verb *v, void *opts);
/* `hutch help VERB`: synopsis, summary, one line per option. */
void opt_print_help(FILE *f, const struct verb *v);
/* "usage: hutch start [-i INSTANCE] [--timeout SEC] NAME": one line per subcommand unless sub names one. */
void opt_print_usage(FILE *f, const struct verb *v, const struct verb *sub);
bool opt_takes_arg(const struct opt *o);
/* The bash completion script, generated from the verb table. */
void opt_print_bash_completion(FILE *f, const struct verb *const *verbs);

/* The verb table (verbs.c), NULL-terminated; help, completion and main all use it. */
extern const struct verb *const hutch_verbs[];
const struct verb *verb_find(const char *name);
