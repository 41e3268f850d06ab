/* Host menu entries for a VM's apps (hutch desktop sync|rm): one .desktop file per app in
 * $XDG_DATA_HOME/applications, a menu folder per VM (a .directory entry and an XDG menu merge
 * file), and icons in the user's hicolor theme. With HUTCH_HOME, the data home is $HUTCH_HOME/share
 * and the config home $HUTCH_HOME/config, so tests never touch the real menu. */
#pragma once
#include "store.h"

struct desktop_sync_opts {
	bool discover; /* ask the running guest for its own entries too */
};

struct desktop_sync_result {
	char **entries;	 /* paths written */
	char **removed;	 /* stale entries removed */
	char **warnings; /* discovery or icon problems (the sync itself went on) */
	size_t discovered;
};
void desktop_sync_result_release(struct desktop_sync_result *r);

int desktop_sync(struct store *st, const char *name, const struct desktop_sync_opts *o, struct desktop_sync_result *ret,
		 struct hutch_error *err);
/* Remove NAME's entries, icons, folder and merge file. The paths removed go to *ret_removed. */
int desktop_remove(const char *name, char ***ret_removed, struct hutch_error *err);
/* create and start: sync when the spec has apps (discovering when the VM runs); problems are
 * logged as warnings, never fatal. */
void desktop_autosync(struct store *st, const char *name, bool running);

/* "$XDG_DATA_HOME" as described above. */
int desktop_data_home(char **ret, struct hutch_error *err);
