/* Running the agent's own tools in a guest (agent/desktop.c: `hutch-agent --TOOL ...`, run as
 * /proc/self/exe) over an exec session, with what they print bounded on the host side. */
#pragma once
#include "store.h"

/* Run `/proc/self/exe ARGS...` as root in the guest, with in_len bytes of in (may be NULL) on its
 * stdin. Its stdout, at most max bytes, goes to *ret (NUL-terminated, free()); more is -EFBIG. A
 * tool that exits non-zero is -EIO with its first line of stderr. */
int guest_tool_run(const struct store *st, const char *name, char *const *args, const void *in, size_t in_len,
		   size_t max, char **ret, size_t *ret_len, struct hutch_error *err);
