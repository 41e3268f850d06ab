/* oci_login: the login user of a bootc image found in, or added to, its passwd, group and shadow
 * texts, and the image's bad files refused. oci_access: the user, key and sudo rule written into
 * a tree with the right owners and modes (a home behind the image's /home link too), and the cache
 * key that changes with the agent, the user and the keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "oci.h"
#include "oci_access.h"
#include "oci_login.h"

#define UNUSED __attribute__((unused))

static const char passwd[] = "root:x:0:0:root:/root:/bin/bash\n"
			     "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
			     "debian:x:1000:1000:Debian:/home/debian:/bin/bash\n"
			     "odd:x:1002:1003::/home/odd:/bin/sh"; /* no final newline */
static const char group[] = "root:x:0:\nsudo:x:27:\ndebian:x:1000:\nodd:x:1003:\n";
static const char shadow[] = "root:*:19000:0:99999:7:::\n";

static int plan(const char *user, const char *pw, const char *gr, const char *sh, struct oci_login *l,
		struct hutch_error *err)
{
	return oci_login_plan(user, "/bin/bash", pw, pw ? strlen(pw) : 0, gr, gr ? strlen(gr) : 0, sh,
			      sh ? strlen(sh) : 0, l, err);
}

static void test_existing(void **state UNUSED)
{
	struct oci_login l = {0};
	struct hutch_error err = {0};
	assert_int_equal(plan("debian", passwd, group, shadow, &l, &err), 0);
	assert_int_equal(l.uid, 1000);
	assert_int_equal(l.gid, 1000);
	assert_string_equal(l.home, "home/debian");
	assert_null(l.passwd);
	assert_null(l.group);
	assert_null(l.shadow);
	oci_login_release(&l);
	assert_int_equal(plan("root", passwd, group, shadow, &l, &err), 0);
	assert_int_equal(l.uid, 0);
	assert_string_equal(l.home, "root");
	oci_login_release(&l);
	/* root without a passwd at all still has /root */
	assert_int_equal(plan("root", NULL, NULL, NULL, &l, &err), 0);
	assert_string_equal(l.home, "root");
	oci_login_release(&l);
}

static void test_added(void **state UNUSED)
{
	struct oci_login l = {0};
	struct hutch_error err = {0};
	assert_int_equal(plan("alice", passwd, group, shadow, &l, &err), 0);
	/* 1000 is debian's, 1002 odd's uid, 1003 odd's gid: 1001 is the first id free in both */
	assert_int_equal(l.uid, 1001);
	assert_int_equal(l.gid, 1001);
	assert_string_equal(l.home, "home/alice");
	assert_non_null(strstr(l.passwd, "/bin/sh\nalice:x:1001:1001::/home/alice:/bin/bash\n"));
	assert_int_equal(strncmp(l.passwd, passwd, strlen(passwd)), 0);
	assert_non_null(strstr(l.group, "odd:x:1003:\nalice:x:1001:\n"));
	assert_string_equal(l.shadow, "root:*:19000:0:99999:7:::\nalice:*::0:99999:7:::\n");
	oci_login_release(&l);
	/* a group of that name: its gid, and no second group */
	assert_int_equal(plan("odd2", passwd, "odd2:x:1500:\n", NULL, &l, &err), 0);
	assert_int_equal(l.gid, 1500);
	assert_null(l.group);
	assert_null(l.shadow); /* the image has none: none made */
	oci_login_release(&l);
	/* no group file: one is made */
	assert_int_equal(plan("bob", "root:x:0:0::/root:/bin/sh\n", NULL, NULL, &l, &err), 0);
	assert_string_equal(l.group, "bob:x:1000:\n");
	oci_login_release(&l);
}

static void test_refused(void **state UNUSED)
{
	struct oci_login l = {0};
	struct hutch_error err = {0};
	assert_int_equal(plan("alice", NULL, group, NULL, &l, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "no /etc/passwd"));
	hutch_error_clear(&err);
	static const char *const bad_homes[] = {"../etc", "/home/../etc", "/", "/home//x", "/home/./x", "/h\tx"};
	for (size_t i = 0; i < sizeof(bad_homes) / sizeof(bad_homes[0]); i++) {
		char *pw = xasprintf("eve:x:1000:1000::%s:/bin/sh\n", bad_homes[i]);
		assert_int_equal(plan("eve", pw, NULL, NULL, &l, &err), -EINVAL);
		assert_non_null(strstr(err.msg, "/etc/passwd:1: user 'eve' has the home"));
		hutch_error_clear(&err);
		free(pw);
	}
	assert_int_equal(plan("eve", "x\neve:x:-1:0::/home/eve:/bin/sh\n", NULL, NULL, &l, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "/etc/passwd:2: user 'eve' has a bad uid or gid"));
	hutch_error_clear(&err);
	char nul[] = "root:x:0:0::/root:/bin/sh\n\0x\n";
	assert_int_equal(oci_login_plan("a", "/bin/sh", nul, sizeof(nul) - 1, NULL, 0, NULL, 0, &l, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "/etc/passwd is not text"));
	hutch_error_clear(&err);
	/* every id taken */
	struct strbuf sb = STRBUF_INIT;
	for (unsigned id = OCI_LOGIN_ID_MIN; id <= OCI_LOGIN_ID_MAX; id++)
		strbuf_addf(&sb, "u:x:%u:0:::\n", id); /* under OCI_LOGIN_FILE_MAX */
	assert_int_equal(oci_login_plan("a", "/bin/sh", sb.buf, sb.len, NULL, 0, NULL, 0, &l, &err), -ENOSPC);
	hutch_error_clear(&err);
	strbuf_release(&sb);
}

static void add(struct oci_tree *t, const char *root, const char *path, const char *text, const char *link,
		uint32_t mode)
{
	struct hutch_error err = {0};
	struct oci_add a = {.path = path, .data = text, .len = text ? strlen(text) : 0, .link = link, .mode = mode};
	assert_int_equal(oci_tree_add(t, root, &a, &err), 0);
}

static const struct oci_node *node(const struct oci_tree *t, const char *path)
{
	const struct oci_node *n = oci_tree_get(t, path);
	assert_non_null(n);
	return n;
}

static char *slurp(const char *root, const char *path)
{
	char *full = xasprintf("%s/%s", root, path), *text = NULL;
	size_t len = 0;
	assert_int_equal(read_file(full, 1 << 20, &text, &len, NULL), 0);
	free(full);
	return text;
}

static void test_apply(void **state UNUSED)
{
	char tmpl[] = "/tmp/hutch-test-access.XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	struct oci_tree t = {0};
	add(&t, tmpl, "etc/passwd", passwd, NULL, 0644);
	add(&t, tmpl, "etc/group", group, NULL, 0644);
	add(&t, tmpl, "etc/sudoers.d/README", "x", NULL, 0440);
	add(&t, tmpl, "var/home/.keep", "", NULL, 0644);
	add(&t, tmpl, "home", NULL, "var/home", 0); /* as in Fedora's bootc images */
	char *keys[] = {"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0 me@host", NULL};
	struct oci_access a = {.user = "alice", .keys = keys};
	struct hutch_error err = {0};
	assert_int_equal(oci_access_apply(tmpl, &t, &a, 7, &err), 0);
	const struct oci_node *n = node(&t, "var/home/alice");
	assert_int_equal(n->mode, S_IFDIR | 0700);
	assert_int_equal(n->uid, 1001);
	assert_int_equal(n->gid, 1001);
	n = node(&t, "var/home/alice/.ssh");
	assert_int_equal(n->mode, S_IFDIR | 0700);
	assert_int_equal(n->uid, 1001);
	n = node(&t, "var/home/alice/.ssh/authorized_keys");
	assert_int_equal(n->mode, S_IFREG | 0600);
	assert_int_equal(n->uid, 1001);
	assert_int_equal(n->gid, 1001);
	char *text = slurp(tmpl, "var/home/alice/.ssh/authorized_keys");
	assert_string_equal(text, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0 me@host\n");
	free(text);
	text = slurp(tmpl, "etc/sudoers.d/hutch-alice");
	assert_string_equal(text, "alice ALL=(ALL) NOPASSWD:ALL\n");
	free(text);
	assert_int_equal(node(&t, "etc/sudoers.d/hutch-alice")->mode, S_IFREG | 0440);
	n = node(&t, "etc/passwd");
	assert_int_equal(n->mode, S_IFREG | 0644); /* the image's mode kept */
	text = slurp(tmpl, "etc/passwd");
	assert_non_null(strstr(text, "alice:x:1001:1001::/home/alice:/bin/sh\n"));
	free(text);
	assert_null(oci_tree_get(&t, "home/alice")); /* the link stays a link */

	/* a home that leads out of the image through a link is refused */
	add(&t, tmpl, "etc/passwd", "mallory:x:1000:1000::/evil/m:/bin/sh\n", NULL, 0644);
	add(&t, tmpl, "evil", NULL, "../../..", 0);
	a.user = "mallory";
	assert_int_equal(oci_access_apply(tmpl, &t, &a, 7, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "leads out of the image"));
	hutch_error_clear(&err);
	oci_tree_release(&t);
	rm_rf(tmpl);
}

static void test_key(void **state UNUSED)
{
	char *k1[] = {"ssh-ed25519 AAAA1", NULL}, *k2[] = {"ssh-ed25519 AAAA2", NULL};
	struct oci_access a = {.user = "alice", .keys = k1};
	char h1[65], h2[65], h3[65], h4[65];
	struct hutch_error err = {0};
	assert_int_equal(oci_access_key(&a, h1, &err), 0);
	assert_int_equal(oci_access_key(&a, h2, &err), 0);
	assert_string_equal(h1, h2);
	a.keys = k2;
	assert_int_equal(oci_access_key(&a, h2, &err), 0);
	a.user = "bob";
	assert_int_equal(oci_access_key(&a, h3, &err), 0);
	char agent[] = "/tmp/hutch-test-agent.XXXXXX";
	int fd = mkstemp(agent);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "v1", 2), 2);
	a.agent = agent;
	assert_int_equal(oci_access_key(&a, h4, &err), 0);
	assert_string_not_equal(h1, h2);
	assert_string_not_equal(h2, h3);
	assert_string_not_equal(h3, h4);
	assert_int_equal(write(fd, "v2", 2), 2); /* a rebuilt agent: another key */
	assert_int_equal(oci_access_key(&a, h1, &err), 0);
	assert_string_not_equal(h1, h4);
	close(fd);
	unlink(agent);
	a.agent = "/nonexistent/hutch-agent";
	assert_true(oci_access_key(&a, h1, &err) < 0);
	hutch_error_clear(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_existing), cmocka_unit_test(test_added), cmocka_unit_test(test_refused),
		cmocka_unit_test(test_apply),	 cmocka_unit_test(test_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
