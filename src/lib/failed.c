/* Logs of disposable VMs that failed to start: kept in DATA/failed/NAME, the ten newest. */
#include "failed.h"

#include <dirent.h>
#include <string.h>
#include <sys/stat.h>

/* Replace every FROM in S with TO. */
static char *str_replace_all(const char *s, const char *from, const char *to)
{
	struct strbuf sb = STRBUF_INIT;
	size_t n = strlen(from);
	const char *p;
	while (n && (p = strstr(s, from))) {
		strbuf_add(&sb, s, (size_t)(p - s));
		strbuf_adds(&sb, to);
		s = p + n;
	}
	strbuf_adds(&sb, s);
	return strbuf_detach(&sb, NULL);
}

/* Keep at most FAILED_KEEP sets of logs of disposable VMs that failed to start, newest first. */

static void prune_failed(const char *dir)
{
	struct dirent **ents = NULL;
	int n = scandir(dir, &ents, NULL, NULL);
	if (n < 0)
		return;
	struct aged {
		char *path;
		time_t mtime;
	} *v = xcalloc((size_t)n + 1, sizeof(*v));
	size_t k = 0;
	for (int i = 0; i < n; i++) {
		struct stat st;
		if (ents[i]->d_name[0] != '.') {
			char *p = xasprintf("%s/%s", dir, ents[i]->d_name);
			if (stat(p, &st) == 0 && S_ISDIR(st.st_mode))
				v[k++] = (struct aged){p, st.st_mtime};
			else
				free(p);
		}
		free(ents[i]);
	}
	free(ents);
	/* newest first, then remove the tail */
	for (size_t i = 1; i < k; i++)
		for (size_t j = i; j > 0 && v[j].mtime > v[j - 1].mtime; j--) {
			struct aged t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	for (size_t i = 0; i < k; i++) {
		if (i >= FAILED_KEEP)
			rm_rf(v[i].path);
		free(v[i].path);
	}
	free(v);
}

/* A disposable VM is removed when it stops, logs and all: one that failed to start keeps its logs
 * in DATA/failed/NAME, and the message points there instead. */
char *failed_keep_logs(const struct store *st, const char *name, const char *msg)
{
	if (strstr(msg, FAILED_MARK))
		return xstrdup(msg); /* the monitor did it already */
	_cleanup_free_ char *vm_dir = store_vm_dir(st, name);
	_cleanup_free_ char *failed = xasprintf("%s/failed", st->data_dir);
	_cleanup_free_ char *kept = xasprintf("%s/%s", failed, name);
	if (mkdir_p(kept, 0700) < 0)
		return xstrdup(msg);
	static const char *const logs[] = {"qemu.log", "console.log", "monitor.log", "swtpm.log", "spec.yml"};
	size_t moved = 0;
	for (size_t i = 0; i < ARRAY_SIZE(logs); i++) {
		_cleanup_free_ char *from = xasprintf("%s/%s", vm_dir, logs[i]);
		_cleanup_free_ char *to = xasprintf("%s/%s", kept, logs[i]);
		/* QEMU may still be writing the console log: a rename keeps its descriptor valid. */
		moved += rename(from, to) == 0 && strcmp(logs[i], "spec.yml") != 0;
	}
	_cleanup_free_ char *hint = xasprintf("'hutch logs %s'", name);
	if (!moved && !strstr(msg, vm_dir) && !strstr(msg, hint)) {
		/* it failed before anything was logged (a bad config.yml, say): nothing to keep */
		rm_rf(kept);
		return xstrdup(msg);
	}
	prune_failed(failed);
	_cleanup_free_ char *console = xasprintf("%s/console.log", kept);
	_cleanup_free_ char *a = str_replace_all(msg, hint, console);
	_cleanup_free_ char *b = str_replace_all(a, vm_dir, kept);
	return xasprintf("%s (the disposable VM is removed; " FAILED_MARK " %s)", b, kept);
}
