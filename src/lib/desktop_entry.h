/* Desktop entries discovered in a guest: parsed from what the agent's --desktop-entries tool
 * prints, which is untrusted. Only Name, Icon, the program of Exec and the main Categories are
 * kept, each checked to a narrow form; everything else in the files is ignored. */
#pragma once
#include "util.h"

#define GUEST_APPS_MAX 256		   /* entries asked for, and kept */
#define GUEST_ENTRIES_BYTES_MAX (4u << 20) /* bytes asked for, and read */
#define GUEST_ENTRY_MAX 65536		   /* one file */
#define GUEST_NAME_MAX 64		   /* characters of Name kept */

struct guest_app {
	char id[65];	       /* the entry's file name without .desktop: desktop_app_valid() */
	char name[4 * 64 + 1]; /* Name=, valid UTF-8 without control characters, at most 64 characters */
	char program[129];     /* Exec's program: a plain name or an absolute path of [A-Za-z0-9._+/-] */
	char icon[65];	       /* Icon= as a theme name of [A-Za-z0-9._+-], or "" */
	char categories[128];  /* the freedesktop main categories among Categories=, ';'-separated */
};

/* Parse the tool's output: records "hutch-entry FILE LEN\n" + LEN bytes + "\n". Entries that are not
 * applications, are hidden, or fail a check are skipped; a malformed record stops the parse (what
 * came before it is kept). Returns the number of apps (at most GUEST_APPS_MAX) in *ret (free()). */
int desktop_entries_parse(const char *untrusted_buf, size_t len, struct guest_app **ret, size_t *ret_n);
/* Parse one entry's text into app (id set by the caller). false when it is to be skipped. */
bool desktop_entry_parse_one(const char *untrusted_text, size_t len, struct guest_app *app);
/* Keep at most max characters of valid UTF-8, replacing control characters and invalid bytes. */
void desktop_sanitize_text(const char *untrusted, size_t len, size_t max_chars, char *out, size_t outlen);
