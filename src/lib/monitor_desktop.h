/* Monitor requests for the desktop: `screendump` (hutch screenshot). */
#pragma once
#include "qmp.h"

/* Handle the CTL request op, or return NULL when it is not a desktop request. The reply is
 * {"ok": true, "file": PATH} or {"ok": false, "error": ...}. */
json_object *monitor_desktop_ctl(struct qmp *q, const char *run_dir, const char *op, json_object *req);
