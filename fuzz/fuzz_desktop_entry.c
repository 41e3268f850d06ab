/* libFuzzer target for the parser of guest desktop entries (src/lib/desktop_entry.c): the output
 * of the agent's --desktop-entries tool, which a hostile guest controls entirely.
 *
 * Whatever the input, every app kept must have a valid id, a program of the checked alphabet
 * (absolute or a plain name, no ".."), a Name of valid UTF-8 without control characters, an icon
 * name without '/', and at most GUEST_APPS_MAX apps. The same bytes as one entry must hold too. */
#include <string.h>

#include "desktop_entry.h"
#include "fuzz.h"
#include "spec_desktop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_app(const struct guest_app *a)
{
	CHECK(desktop_app_valid(a->id));
	size_t pl = strlen(a->program);
	CHECK(pl > 0 && pl < sizeof(a->program));
	CHECK(strspn(a->program, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+/-") == pl);
	CHECK(!strstr(a->program, ".."));
	CHECK(a->program[0] == '/' || !strchr(a->program, '/'));
	CHECK(a->name[0] != 0);
	for (const unsigned char *p = (const unsigned char *)a->name; *p; p++)
		CHECK(*p >= 0x20 && *p != 0x7f);
	CHECK(!strchr(a->icon, '/'));
	CHECK(strlen(a->categories) < sizeof(a->categories));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct guest_app *apps = NULL;
	size_t n = 0;
	CHECK(desktop_entries_parse((const char *)data, size, &apps, &n) == 0);
	CHECK(n <= GUEST_APPS_MAX);
	for (size_t i = 0; i < n; i++)
		check_app(&apps[i]);
	free(apps);

	struct guest_app one = {.id = "x"};
	if (desktop_entry_parse_one((const char *)data, size, &one))
		check_app(&one);

	char out[4 * 64 + 1];
	desktop_sanitize_text((const char *)data, size, 64, out, sizeof(out));
	CHECK(strlen(out) < sizeof(out));
	return 0;
}
