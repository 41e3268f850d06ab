/* Flatpak apps in VMs (`hutch run NAME --flatpak APP-ID`, reference 003): which host dirs a
 * disposable VM gets, as which guest user the app runs, and the guest commands that run it.
 *
 * The host's flatpak installations are shared read-only (system: /var/lib/flatpak; user:
 * ~/.local/share/flatpak, at the same path in the guest), and the app's data dir ~/.var/app/APP-ID
 * read-write: a per-VM dir under $XDG_DATA_HOME/hutch/flatpak/NAME/APP-ID by default, or the host's
 * own with shared_data. The app runs as a guest user with the host user's uid, gid and HOME, never
 * as root (reference 003 ran apps as root because of 9p; with security_model=mapped-xattr the host
 * files show the host uid, so that user owns its data and reads its installation). */
#pragma once
#include "spec.h"
#include "store.h"
#include "util.h"

#define FLATPAK_APP_ID_MAX 255

/* flatpak's rule for app IDs: 3 or more dot-separated elements of [A-Za-z0-9_-], none empty or
 * starting with a digit, '-' only in the last one, at most 255 bytes. */
bool flatpak_valid_app_id(const char *id);

struct flatpak_in {
	const char *app_id;
	const char *base;	    /* the VM (spec) name: the per-VM data dir is keyed by it */
	bool shared_data;	    /* the host's own ~/.var/app/APP-ID instead of the per-VM dir */
	char *const *args;	    /* the app's arguments, may be NULL */
	char *const *env;	    /* extra K=V for the app, may be NULL */
	const char *system_dir;	    /* NULL: $FLATPAK_SYSTEM_DIR or /var/lib/flatpak */
	const char *user_dir;	    /* NULL: $FLATPAK_USER_DIR, $XDG_DATA_HOME/flatpak or ~/.local/share/flatpak */
	unsigned uid, gid;	    /* the host user's: the guest user gets them (root is refused) */
	const char *home;	    /* the host user's HOME: the guest user's too */
	const char *user_name;	    /* the host user's name: the guest user's when it is a plain name */
	const struct vm_spec *spec; /* NAME's spec when defined: its own shares must not hide ours */
};

struct flatpak_plan {
	char **shares;	  /* "HOST:GUEST[:ro]", the form of create's --share */
	char *data_dir;	  /* the host dir shared as the app's data dir */
	char *home;	  /* the guest user's HOME (the host's) */
	char *user;	  /* the guest user for exec: the host uid, as a number */
	char **prep_argv; /* run first, as root: makes the user, its runtime dir, owns HOME */
	char **prep_env;
	char **run_argv; /* flatpak run APP-ID ARGS... */
	char **run_env;
};
void flatpak_plan_release(struct flatpak_plan *p);
static inline void flatpak_plan_releasep(struct flatpak_plan *p) { flatpak_plan_release(p); }

/* The plan for one app. Errors: an invalid app ID, the app installed in neither installation, a
 * HOME that cannot be a guest mount point, hutch run as root, a data dir that cannot be made. */
int flatpak_plan(const struct store *st, const struct flatpak_in *in, struct flatpak_plan *ret,
		 struct hutch_error *err);

/* What the prep command's exit status means (its stderr has the details). */
#define FLATPAK_PREP_NO_FLATPAK 3
#define FLATPAK_PREP_NO_BWRAP 4
const char *flatpak_prep_failure(int status);
