/* etc_hosts_rename: a clone's /etc/hosts (src/proto/etc_hosts.h). */
#include "util.h"
#include "etc_hosts.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#define UNUSED __attribute__((unused))

static void expect(const char *in, const char *old, const char *new_name, const char *want)
{
	char *got = etc_hosts_rename(in, old, new_name);
	if (!want) {
		assert_null(got);
		return;
	}
	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static void test_debian_cloud(void **state UNUSED)
{
	/* what cloud-init's manage_etc_hosts writes on Debian */
	expect("127.0.1.1 img.localdomain img\n127.0.0.1 localhost\n::1 ip6-localhost\n", "img", "img-1a2b3c4d",
	       "127.0.1.1 img-1a2b3c4d.localdomain img-1a2b3c4d\n127.0.0.1 localhost\n::1 ip6-localhost\n");
	/* a tab, no trailing newline */
	expect("127.0.1.1\timg", "img", "c", "127.0.1.1\tc");
}

static void test_only_whole_names_on_the_loopback_line(void **state UNUSED)
{
	/* other lines, other names that merely contain it, a later label: untouched */
	expect("127.0.0.1 img\n10.0.0.1 img\n", "img", "c", NULL);
	expect("127.0.1.1 imgx ximg x.img x-img img_a\n", "img", "c", NULL);
	expect("# 127.0.1.1 img\n", "img", "c", NULL);
	expect("127.0.1.10 img\n", "img", "c", NULL);
	expect("127.0.1.1 img ximg img\n", "img", "new", "127.0.1.1 new ximg new\n");
	/* the address itself is never a name */
	expect("127.0.1.1 a\n", "1", "x", NULL);
	expect("", "img", "c", NULL);
	expect("127.0.1.1 img\n", "", "c", NULL);
}

static void test_growth_is_bounded(void **state UNUSED)
{
	/* many one-byte matches, each replaced by a long name */
	struct strbuf in = STRBUF_INIT, want = STRBUF_INIT;
	char longname[65];
	memset(longname, 'n', 64);
	longname[64] = 0;
	strbuf_adds(&in, "127.0.1.1");
	strbuf_adds(&want, "127.0.1.1");
	for (int i = 0; i < 2000; i++) {
		strbuf_adds(&in, " a");
		strbuf_addf(&want, " %s", longname);
	}
	strbuf_adds(&in, "\n");
	strbuf_adds(&want, "\n");
	expect(in.buf, "a", longname, want.buf);
	strbuf_release(&in);
	strbuf_release(&want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_debian_cloud),
		cmocka_unit_test(test_only_whole_names_on_the_loopback_line),
		cmocka_unit_test(test_growth_is_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
