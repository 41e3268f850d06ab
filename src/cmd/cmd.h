/* What every verb gets: global options, the store, and an error to fill. */
#pragma once
#include "store.h"
#include "util.h"
#include "image.h"

#include <json-c/json.h>
#include <signal.h>

/* Exit codes: 0 ok, 1 error, 2 usage. `run`/`exec` return the program's own status. */
enum { EXIT_OK = 0, EXIT_ERR = 1, EXIT_USAGE = 2 };

struct cmd_ctx {
	bool json;
	bool quiet;
	int verbose;
	const char *verb;
	char *subject; /* the VM the error is about, printed as "hutch: VERB 'SUBJECT': why" */
	struct store store;
	struct hutch_error err;
};

struct verb {
	const char *name;
	int (*fn)(int argc, char **argv, struct cmd_ctx *c);
	int min_args, max_args; /* positional arguments after options; -1 = unlimited */
	const char *usage;
	const char *summary;
};

/* Fail with a usage message: returns EXIT_USAGE. */
int cmd_usage(struct cmd_ctx *c, const char *fmt, ...) _printf_(2, 3);
/* Set the error and return EXIT_ERR (or the given code). */
int cmd_fail(struct cmd_ctx *c, int r);
void cmd_set_subject(struct cmd_ctx *c, const char *name);
/* Print a JSON object (and put it). */
void cmd_print_json(json_object *o);
/* Parse --memory/--cpus/--disk/--timeout style values, failing with a usage error. */
int cmd_parse_size(struct cmd_ctx *c, const char *opt, const char *v, uint64_t *ret);
int cmd_parse_uint(struct cmd_ctx *c, const char *opt, const char *v, long long max, long long *ret);
int cmd_parse_duration(struct cmd_ctx *c, const char *opt, const char *v, uint64_t *ret_ms);
/* Check positional argument count for the current verb. */
int cmd_check_args(struct cmd_ctx *c, int argc, int optind_, int min, int max);
bool cmd_color(void);

#define VERB(n) int cmd_##n(int argc, char **argv, struct cmd_ctx *c)
VERB(create);
VERB(start);
VERB(stop);
VERB(destroy);
VERB(list);
VERB(inspect);
VERB(console);
VERB(logs);
VERB(exec);
VERB(shell);
VERB(run);
VERB(cp);
VERB(doctor);
VERB(port);
VERB(monitor);
VERB(help);

/* NAME plus -i INSTANCE -> the VM name; sets the error subject. Returns 0 or EXIT_ERR. */
int cmd_vm_name(struct cmd_ctx *c, const char *name, const char *instance, char **ret);

/* Download progress for image fetches (create, build, image pull). */
struct cmd_bar {
	bool drawn;
	bool finished;
};
struct cmd_progress {
	struct image_progress ip;
	struct cmd_bar bar;
	struct sigaction old;
	bool armed;
};
const struct image_progress *cmd_progress_init(struct cmd_ctx *c, struct cmd_progress *p);
/* Restores SIGINT; true when the user interrupted. */
bool cmd_progress_done(struct cmd_progress *p);
/* VERB [opts] NAME [opts] -- CMD... or VERB [opts] NAME CMD...: the argc getopt should see, the getopt
 * string to use (written to optbuf), and the command after "--" (NULL when there is no "--"). */
int cmd_command_split(int argc, char **argv, const char *optstring, char *optbuf, size_t optbuf_len, int *ret_opt_argc,
		      char ***ret_cmd);
/* exec and run: their shared options, the VM, and the command. */
#include "session.h"
struct exec_cli {
	struct exec_opts o; /* o.env is allocated: strv_free it */
	const char *name;
	const char *instance; /* exec --instance */
	bool rm;	      /* run --rm */
};
int cmd_exec_parse(struct cmd_ctx *c, int argc, char **argv, bool is_run, struct exec_cli *ret);
/* "1.5 GiB" */
const char *cmd_human(uint64_t b, char *buf, size_t len);
VERB(image);
VERB(build);
VERB(ssh);
