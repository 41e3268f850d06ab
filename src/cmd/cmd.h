/* What every verb gets: global options, the store, and an error to fill. */
#pragma once
#include "accel.h"
#include "store.h"
#include "util.h"
#include "image.h"

#include <json-c/json.h>
#include <signal.h>

/* Exit codes: 0 ok, 1 error, 2 usage. `run`/`exec` return the program's own status. */
/* EXIT_ALREADY: start (and the autostart unit that runs it) found the VM running already. */
enum { EXIT_OK = 0, EXIT_ERR = 1, EXIT_USAGE = 2, EXIT_ALREADY = 3 };

struct cmd_ctx {
	bool json;
	bool quiet;
	int verbose;
	const char *verb;
	char *subject; /* the VM the error is about, printed as "hutch: VERB 'SUBJECT': why" */
	struct store store;
	struct hutch_error err;
	const struct verb *verb_def, *sub_def; /* for usage lines; set by opt_parse */
};

#include "options.h"

/* Fail with a usage message and the verb's usage line: returns EXIT_USAGE. */
int cmd_usage(struct cmd_ctx *c, const char *fmt, ...) _printf_(2, 3);
/* Set the error and return EXIT_ERR (or the given code). */
int cmd_fail(struct cmd_ctx *c, int r);
void cmd_set_subject(struct cmd_ctx *c, const char *name);
/* Print a JSON object (and put it). */
void cmd_print_json(json_object *o);
/* A JSON array of the strings in strv v ([] for NULL). */
json_object *cmd_json_strv(char *const *v);
/* A field of a JSON object from the monitor or the library: 0 or "" when absent. */
int64_t cmd_json_int(json_object *o, const char *key);
const char *cmd_json_str(json_object *o, const char *key);
bool cmd_color(void);
/* The verbs: `hutch help` and the bash completion list them in this order (verbs.c). */
extern const struct verb verb_create, verb_build, verb_start, verb_stop, verb_destroy, verb_list, verb_inspect,
	verb_console, verb_logs, verb_exec, verb_shell, verb_run, verb_cp, verb_ssh, verb_port, verb_image, verb_doctor,
	verb_help, verb_completion, verb_monitor, verb_setup, verb_autostart, verb_service;
extern const struct verb verb_pci, verb_balloon, verb_usb;
extern const struct verb verb_net;
extern const struct verb verb_events;
extern const struct verb verb_libvirt_watch;
extern const struct verb verb_cp_image;
extern const struct verb verb_template, verb_snapshot;
extern const struct verb verb_view, verb_screenshot, verb_desktop, verb_clip;
/* "usage: hutch [--json] …" and the verbs with their summaries. */
void cmd_print_verbs(FILE *f);

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
/* exec and run: their shared options, the VM, and the command. */
#include "session.h"
struct exec_cli {
	struct exec_opts o;    /* o.env is freed by the dispatcher */
	const char *instance;  /* exec --instance */
	bool rm;	       /* run --rm */
	bool cold;	       /* run --rm --cold: boot, even with a warm template */
	int tty_mode;	       /* -t 1, -T 0, neither -1 */
	enum accel_mode accel; /* run --accel, for the VM run creates */
	char **shares;	       /* run --share HOST:GUEST[:ro], for the VM run creates */
	const char *backend;   /* run --backend, for the VM run creates */
	const char *uri;       /* run --connect */
	const char *flatpak;   /* run --flatpak APP-ID (run_flatpak.c) */
	bool shared_data;      /* run --flatpak --shared-data */
};
extern const struct opt cmd_run_opts[];
extern const struct exec_cli cmd_exec_defaults; /* tty_mode -1: neither -t nor -T */
/* argv: NAME then the command. Checks the command and settles tty and stdin; 0 or EXIT_USAGE. */
int cmd_exec_finish(struct cmd_ctx *c, struct exec_cli *e, int argc, char **argv);
/* "1.5 GiB" */
const char *cmd_human(uint64_t b, char *buf, size_t len);
/* --accel MODE: auto, kvm or tcg into *ret; a usage error (EXIT_USAGE) names the bad value. */
int cmd_parse_accel(struct cmd_ctx *c, const char *arg, enum accel_mode *ret);
/* run --flatpak (run_flatpak.c): check the flags and plan the app (argv: NAME then the app's
 * arguments), making the run disposable with the plan's shares; 0, EXIT_ERR or EXIT_USAGE. */
struct flatpak_plan;
/* `run NAME --flatpak APP [--shared-data] [ARGS]` without "--": the options parser left them in the
 * command; takes them out (argv becomes NAME ARGS, in *ret_argv, which the caller frees). */
int cmd_run_flatpak_args(struct cmd_ctx *c, struct exec_cli *e, int *argc, char ***argv, char ***ret_argv);
int cmd_run_flatpak_plan(struct cmd_ctx *c, struct exec_cli *e, const char *base, int argc, char **argv,
			 struct flatpak_plan *ret);
/* Prepares the guest user (as root), then runs flatpak run as that user with app's stdio and tty. */
int cmd_run_flatpak_exec(struct cmd_ctx *c, const char *name, const struct flatpak_plan *fp,
			 const struct exec_opts *app, int *ret_status);
