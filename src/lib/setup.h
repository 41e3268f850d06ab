/* hutch setup: make this user's host ready, idempotently. The steps are planned as data: each knows
 * whether it is needed and how to do it, so `setup --check` and the real run share one list.
 *
 * Steps: the XDG dirs (config, data, cache, runtime), the micro template's initramfs, a commented
 * config.yml, and uri_default = "qemu:///session" in libvirt.conf when libvirt is installed and no
 * uri_default is set. libvirt.conf is $XDG_CONFIG_HOME/libvirt/libvirt.conf (~/.config/...); with
 * HUTCH_HOME set, $HUTCH_HOME/config/libvirt/libvirt.conf, so tests never touch the real home.
 * What needs root (the kvm group, missing packages) is never done: it comes back as a hint naming the
 * command. */
#pragma once
#include "store.h"
#include "util.h"

enum setup_kind { SETUP_DIR = 0, SETUP_TEMPLATE, SETUP_CONFIG, SETUP_LIBVIRT_URI };

struct setup_step {
	enum setup_kind kind;
	char *path;	 /* the dir or file it makes or edits */
	char *what;	 /* "create directory /x", "write uri_default = ... to /y" */
	bool needed;	 /* something would change */
	bool done;	 /* setup_apply changed it */
	char *error;	 /* the check or the change failed: why; the others still run */
	char *hint;	 /* a command to run by hand, when the error has one */
	char *done_what; /* after apply: what changed, in the past tense */
};

struct setup_plan {
	struct setup_step *steps;
	size_t n;
	char **hints; /* strv: commands that need root, e.g. "sudo usermod -aG kvm alice" */
	/* inputs, resolved by setup_plan_make; tests may set them before setup_plan_check */
	char *libvirt_conf; /* NULL: libvirt is not installed, no step */
	char *config_yml;
	char *agent; /* NULL: no agent, the template step fails with a hint */
	char *micro_cache;
	const char *dirs[4];
};

/* The uri_default that setup writes, and config.yml's text. */
#define SETUP_LIBVIRT_URI_LINE "uri_default = \"qemu:///session\"\n"
extern const char setup_config_yml[];

/* Plan for this store and host: resolves paths and checks each step (writes nothing). */
int setup_plan_make(const struct store *st, struct setup_plan *ret, struct hutch_error *err);
/* Do every needed step. Returns the number of steps that failed (their error is set). */
int setup_apply(struct setup_plan *p);
size_t setup_needed(const struct setup_plan *p);
size_t setup_failed(const struct setup_plan *p);
void setup_plan_release(struct setup_plan *p);

/* libvirt.conf editing, pure. Only an uncommented `uri_default` line counts as set (any value: it is
 * respected). Returns 1 and the new text (the old one, a newline if it lacked one, then the line) when
 * the line should be added; 0 when uri_default is set already (*ret untouched). */
int setup_libvirt_conf_edit(const char *text, char **ret);
/* Whether libvirt is installed: virsh on PATH or libvirt.so.0 in a library dir. */
bool setup_libvirt_installed(void);
/* The libvirt.conf setup edits (see above); NULL when libvirt is not installed or there is no home. */
char *setup_libvirt_conf_path(void);
