/* The VM store: XDG paths, names, locks and state files. */
#pragma once
#include "util.h"

struct store {
	char *config_dir;  /* $XDG_CONFIG_HOME/hutch */
	char *data_dir;	   /* $XDG_DATA_HOME/hutch */
	char *cache_dir;   /* $XDG_CACHE_HOME/hutch */
	char *runtime_dir; /* $XDG_RUNTIME_DIR/hutch, or /tmp/hutch-$UID */
};

/* Resolve the four roots (HUTCH_HOME=DIR puts them all under DIR). Creates nothing. */
int store_open(struct store *ret, struct hutch_error *err);
void store_release(struct store *s);
/* The user's config dir where other programs look (systemd user units, libvirt.conf): $XDG_CONFIG_HOME
 * or ~/.config; with HUTCH_HOME, $HUTCH_HOME/config, which no other program reads, so tests never touch
 * the real home. */
/* An XDG base dir: HUTCH_HOME/HUTCH_SUB when HUTCH_HOME is set (tests), else $XDG_VAR when absolute,
 * else $HOME/HOME_SUB. */
int store_xdg_dir(const char *hutch_sub, const char *xdg_var, const char *home_sub, char **ret,
		  struct hutch_error *err);
int store_user_config_home(char **ret, struct hutch_error *err);

/* [a-z0-9][a-z0-9-]{0,62}. Checked before any file access. */
bool store_name_valid(const char *name);
int store_check_name(const char *name, struct hutch_error *err);

/* Per-VM paths. */
char *store_vm_dir(const struct store *s, const char *name); /* data/vms/NAME */
char *store_vm_file(const struct store *s, const char *name, const char *file);
char *store_run_dir(const struct store *s, const char *name); /* runtime/NAME */
char *store_run_file(const struct store *s, const char *name, const char *file);
/* Makes runtime/NAME (mode 0700) and checks that every socket path fits sun_path. */
int store_prepare_run_dir(const struct store *s, const char *name, struct hutch_error *err);
int store_check_sun_path(const char *path, struct hutch_error *err);

bool store_vm_exists(const struct store *s, const char *name);
/* Names of all defined VMs, sorted. */
int store_list(const struct store *s, char ***ret_names, struct hutch_error *err);

/* Locks. The run lock (runtime/NAME/lock) is held by the monitor for as long as the VM runs: a VM
 * is running exactly when it is held. The op lock (data/vms/NAME/.lock, or a sibling for VMs not
 * yet created) serialises mutating verbs. Both are flock(2) on dedicated files, re-checked after
 * locking so a file unlinked under us is never trusted. */
enum lock_mode { LOCK_TRY = 0, LOCK_WAIT = 1 };
/* Returns the locked fd. -EWOULDBLOCK when held (TRY) or -EBUSY after timeout_ms (WAIT). */
int store_lock_file(const char *path, uint64_t timeout_ms, int *ret_fd, struct hutch_error *err);
int store_lock_op(const struct store *s, const char *name, uint64_t timeout_ms, int *ret_fd, struct hutch_error *err);
/* Take the run lock without waiting: -EALREADY (message "already running") when held. */
int store_lock_run(const struct store *s, const char *name, int *ret_fd, struct hutch_error *err);
/* true when some process (the monitor) holds the run lock. Never trusts a pidfile. */
bool store_is_running(const struct store *s, const char *name);

/* state.json in the VM dir: small JSON facts (last boot, last exit reason). */
int store_write_state(const struct store *s, const char *name, const char *json, struct hutch_error *err);
char *store_read_state(const struct store *s, const char *name);
