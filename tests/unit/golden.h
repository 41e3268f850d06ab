/* Golden files for the unit tests: compare rendered text with tests/golden/DIR/NAME and report the
 * first line that differs, which is all a reviewer needs to find the change. HUTCH_UPDATE_GOLDEN=1
 * (anything but 0) writes the file instead. Include after <cmocka.h> and "util.h"; define
 * GOLDEN_DIR (SRCDIR "/tests/golden/argv/", say) first. */
#pragma once
#include <string.h>

#ifndef GOLDEN_DIR
#error "define GOLDEN_DIR before including golden.h"
#endif

static void golden_report_diff(const char *name, const char *want, const char *got)
{
	int line = 1;
	const char *w = want, *g = got;
	while (*w && *w == *g) {
		if (*w == '\n')
			line++;
		w++;
		g++;
	}
	const char *wl = w, *gl = g;
	while (wl > want && wl[-1] != '\n')
		wl--;
	while (gl > got && gl[-1] != '\n')
		gl--;
	fail_msg("%s differs at line %d:\n  golden: %.*s\n  actual: %.*s\n(HUTCH_UPDATE_GOLDEN=1 regenerates)", name,
		 line, (int)strcspn(wl, "\n"), wl, (int)strcspn(gl, "\n"), gl);
}

static void check_golden(const char *name, const char *got)
{
	_cleanup_free_ char *path = xasprintf(GOLDEN_DIR "%s", name);
	struct hutch_error err = {0};
	const char *update = getenv("HUTCH_UPDATE_GOLDEN");
	if (update && *update && strcmp(update, "0")) {
		if (mkdir_p(GOLDEN_DIR, 0755) < 0 || write_file_atomic(path, got, strlen(got), 0644, &err) < 0)
			fail_msg("%s", err.msg ? err.msg : "cannot create " GOLDEN_DIR);
		print_message("updated %s\n", path);
		return;
	}
	_cleanup_free_ char *want = NULL;
	if (read_file(path, 1 << 20, &want, NULL, &err) < 0)
		fail_msg("%s (HUTCH_UPDATE_GOLDEN=1 creates it)", err.msg);
	if (strcmp(want, got))
		golden_report_diff(name, want, got);
}
