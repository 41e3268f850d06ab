/* What the host does to a guest's notification before it shows it (monitor_notify.c sends it):
 * text cut and cleaned, markup stripped, icon names checked, and a rate per VM. Pure functions, so
 * the unit tests and the fuzz target (fuzz/fuzz_notify.c) run them on hostile input. */
#pragma once
#include "util.h"

#define NOTIFY_SUMMARY_CHARS 100 /* code points, before the "[NAME] " prefix */
#define NOTIFY_BODY_CHARS 1000
#define NOTIFY_APP_CHARS 40
#define NOTIFY_ICON_MAX 64
#define NOTIFY_IMAGE_SIDE 128 /* bigger images are dropped, not scaled */
#define NOTIFY_BURST 10	      /* a VM may show this many at once ... */
#define NOTIFY_REFILL_MS 2000 /* ... and one more every so often after that */

/* Guest text made safe to show: markup tags removed (<b>, <a href=...>, <img ...>, and anything
 * else between < and >), the five XML entities decoded, invalid UTF-8 replaced by U+FFFD, control
 * characters and bidirectional overrides (which could turn "[NAME]" around) dropped, and at most
 * max_chars code points kept ("…" marks a cut). one_line: newlines and tabs become spaces. With
 * escape, the result is escaped for a server that takes body markup (&, <, >). */
char *notify_text(const char *untrusted, size_t max_chars, bool one_line, bool escape);
/* An icon name from the host's theme: [A-Za-z0-9._-], at most NOTIFY_ICON_MAX, not starting with a
 * dot; else NULL. */
bool notify_icon_ok(const char *untrusted);

/* A token bucket: NOTIFY_BURST at once, then one per NOTIFY_REFILL_MS. */
struct notify_rate {
	uint32_t tokens;
	uint64_t last_ms; /* when the bucket was last refilled; 0: never used */
	uint64_t dropped; /* refused since the last allowed one */
};
/* true: show it (and take a token); false: dropped (counted). */
bool notify_rate_allow(struct notify_rate *r, uint64_t now_ms);
