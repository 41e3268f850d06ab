/* Autostart: a systemd user unit per VM that starts it at boot and stops it at shutdown.
 *
 * The unit is hutch-NAME.service in the user unit dir: $XDG_CONFIG_HOME/systemd/user (or
 * ~/.config/systemd/user); with HUTCH_HOME set, $HUTCH_HOME/config/systemd/user, which systemd does not
 * search, so tests never touch the real user manager. "Enabled" means the symlink
 * default.target.wants/hutch-NAME.service -> ../hutch-NAME.service, the same link
 * `systemctl --user enable` makes; hutch writes it itself, so it works without a running user manager.
 * Then it asks the manager to reload and enables linger (so the user manager, and the VM, start at boot
 * without a login). What cannot be done is returned as a warning that names the command to run. */
#pragma once
#include "spec.h"
#include "util.h"

struct autostart_unit {
	const char *name;	/* VM name, [a-z0-9-] */
	const char *hutch;	/* absolute path of the hutch binary */
	const char *hutch_home; /* HUTCH_HOME to carry as Environment=, or NULL */
};
/* The unit file's text. Pure. -EINVAL for a relative path or a control character. */
int autostart_render_unit(const struct autostart_unit *u, char **ret, struct hutch_error *err);
/* One argument quoted for an Exec= line (and, with exec false, for Environment=): "%" -> "%%", in Exec=
 * "$" -> "$$", quoted with C escapes when it holds whitespace, quotes or backslashes. */
void autostart_quote(struct strbuf *sb, const char *arg, bool exec);

/* The user unit dir (see above). */
int autostart_unit_dir(char **ret, struct hutch_error *err);
char *autostart_unit_path(const char *unit_dir, const char *name); /* DIR/hutch-NAME.service */
/* true when the unit file exists. Cheap: one stat. */
bool autostart_is_on(const char *name);

struct autostart_result {
	char *unit_path;
	bool changed;	 /* a file was written or removed */
	char **warnings; /* strv: what could not be done, each naming the command to run */
};
void autostart_result_release(struct autostart_result *r);
static inline void autostart_result_releasep(struct autostart_result *r) { autostart_result_release(r); }

/* Write the unit (atomically) and the wants link, reload the user manager, enable linger. spec may be
 * NULL; its backend picks the backend hook. The hutch binary is /proc/self/exe. */
int autostart_enable(const char *name, const struct vm_spec *spec, struct autostart_result *ret,
		     struct hutch_error *err);
/* Remove the wants link and the unit, reload the user manager. Not on already: nothing changes. */
int autostart_disable(const char *name, struct autostart_result *ret, struct hutch_error *err);
