/* Desktop requests in the monitor. A screenshot is QMP screendump with format=png (QEMU >= 7.1
 * writes the PNG itself, through libpng) into the VM's run dir, which only the user can reach; the
 * CLI then copies it where the user asked. QEMU is never handed a path the user named. */
#include "monitor_desktop.h"

#include <string.h>
#include <unistd.h>

static json_object *reply_error(const char *msg)
{
	json_object *e = json_object_new_object();
	json_object_object_add(e, "ok", json_object_new_boolean(0));
	json_object_object_add(e, "error", json_object_new_string(msg));
	return e;
}

static json_object *screendump(struct qmp *q, const char *run_dir)
{
	if (!q)
		return reply_error("QMP is not connected");
	static unsigned seq;
	_cleanup_free_ char *file = xasprintf("%s/screendump-%u.png", run_dir, ++seq);
	struct hutch_error err = {0};
	json_object *args = json_object_new_object();
	json_object_object_add(args, "filename", json_object_new_string(file));
	json_object_object_add(args, "format", json_object_new_string("png"));
	if (qmp_execute(q, "screendump", args, 30000, NULL, &err) < 0) {
		_cleanup_free_ char *msg = xasprintf("screendump: %s", err.msg ? err.msg : "failed");
		hutch_error_clear(&err);
		unlink(file);
		return reply_error(msg);
	}
	json_object *o = json_object_new_object();
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	json_object_object_add(o, "file", json_object_new_string(file));
	return o;
}

json_object *monitor_desktop_ctl(struct qmp *q, const char *run_dir, const char *op, json_object *req)
{
	if (!strcmp(op, "screendump"))
		return screendump(q, run_dir);
	return NULL;
}
