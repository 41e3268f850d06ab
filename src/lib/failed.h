/* A disposable VM (run --rm) is removed when it stops. One that fails to start keeps its qemu.log,
 * console.log and monitor.log in DATA/failed/NAME, so that every error pointing at a log points at
 * a file that exists; the FAILED_KEEP newest are kept. */
#pragma once
#include "store.h"
#include "util.h"

#define FAILED_KEEP 10
#define FAILED_MARK "its logs are kept in"

/* Move NAME's logs to DATA/failed/NAME and return MSG with paths into the VM dir (and 'hutch logs
 * NAME') rewritten to point there. Idempotent: a message that says so already is returned as is. */
char *failed_keep_logs(const struct store *st, const char *name, const char *msg);
