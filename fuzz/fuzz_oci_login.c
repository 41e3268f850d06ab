/* libFuzzer target for the login user reader (oci_login.c), which reads a bootc image's untrusted
 * /etc/passwd, /etc/group and /etc/shadow: the input is all three (split at the first two form
 * feeds). Any input either gives a clean relative home and texts that only append to the image's, or
 * fails with a message. */
#include <string.h>

#include "fuzz.h"
#include "oci_login.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_appended(const char *old, size_t old_len, const char *new_text)
{
	if (!new_text)
		return;
	CHECK(strlen(new_text) > old_len);
	CHECK(!old || memcmp(new_text, old, old_len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	const char *ff1 = memchr(p, '\f', size);
	const char *ff2 = ff1 ? memchr(ff1 + 1, '\f', (size_t)(end - ff1 - 1)) : NULL;
	size_t plen = ff1 ? (size_t)(ff1 - p) : size;
	const char *group = ff1 ? ff1 + 1 : NULL;
	size_t glen = group ? (size_t)((ff2 ? ff2 : end) - group) : 0;
	const char *shadow = ff2 ? ff2 + 1 : NULL;
	size_t slen = shadow ? (size_t)(end - shadow) : 0;
	static const char *const users[] = {"root", "debian", "alice"};
	for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++) {
		struct hutch_error err = {0};
		struct oci_login l = {0};
		int r = oci_login_plan(users[i], "/bin/sh", p, plen, group, glen, shadow, slen, &l, &err);
		if (r == 0) {
			CHECK(l.home && *l.home && l.home[0] != '/');
			CHECK(!strstr(l.home, "//") && strcmp(l.home, "..") && strncmp(l.home, "../", 3));
			CHECK(!strstr(l.home, "/../") && !strstr(l.home, "/./"));
			check_appended(p, plen, l.passwd);
			check_appended(group, glen, l.group);
			check_appended(shadow, slen, l.shadow);
			CHECK(!l.passwd || (l.uid >= OCI_LOGIN_ID_MIN && l.uid <= OCI_LOGIN_ID_MAX));
			oci_login_release(&l);
		} else {
			CHECK(r < 0 && err.msg && *err.msg);
		}
		hutch_error_clear(&err);
	}
	return 0;
}
