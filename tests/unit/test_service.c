/* service: the libvirt daemons probed in fake install trees (a Debian 12-like monolithic libvirtd,
 * a split-daemon install with packaged user units, nothing at all), and both inits' renderings
 * diffed against golden files. Regenerate the goldens with HUTCH_UPDATE_GOLDEN=1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <string.h>
#include <sys/stat.h>

#include "service.h"

#define GOLDEN_DIR SRCDIR "/tests/golden/service/"
#include "golden.h"
#define RUNTIME "/run/user/1000"

/* ---- fake install trees ---- */

static char *make_root(void)
{
	char *d = xstrdup("/tmp/hutch-test-service.XXXXXX");
	assert_non_null(mkdtemp(d));
	return d;
}

static void put(const char *root, const char *path, mode_t mode)
{
	_cleanup_free_ char *p = xasprintf("%s%s", root, path);
	_cleanup_free_ char *dir = xstrdup(p);
	*strrchr(dir, '/') = '\0';
	assert_int_equal(mkdir_p(dir, 0755), 0);
	assert_int_equal(write_file_atomic(p, "", 0, mode, NULL), 0);
}

static void rm_root(char **root)
{
	if (*root)
		rm_rf(*root);
	free(*root);
}

/* Debian 12: libvirt-daemon ships /usr/sbin/libvirtd and virtlogd, and no user units. */
static char *debian_root(void)
{
	char *root = make_root();
	put(root, "/usr/sbin/libvirtd", 0755);
	put(root, "/usr/sbin/virtlogd", 0755);
	put(root, "/usr/sbin/virtlockd", 0755);
	return root;
}

static char *render(const struct service_install *in, enum service_init init, bool full)
{
	struct service_render_opts o = {.init = init, .full = full, .runtime_dir = RUNTIME};
	_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
	struct hutch_error err = {0};
	int r = service_render(in, &o, &sb, &err);
	if (r < 0)
		fail_msg("service_render: %s", err.msg);
	return strbuf_detach(&sb, NULL);
}

/* ---- tests ---- */

static void test_debian_probe(void **state)
{
	_cleanup_(rm_root) char *root = debian_root();
	struct service_install in;
	assert_int_equal(service_probe(root, "/usr/local/bin:/usr/bin:/bin", &in, NULL), 0);
	assert_string_equal(in.bin[SERVICE_LIBVIRTD], "/usr/sbin/libvirtd");
	assert_string_equal(in.bin[SERVICE_VIRTLOGD], "/usr/sbin/virtlogd");
	assert_null(in.bin[SERVICE_VIRTQEMUD]);
	assert_null(in.bin[SERVICE_VIRTNETWORKD]);
	for (int i = 0; i < SERVICE_N; i++)
		assert_false(in.user_unit[i]);
	service_install_release(&in);
}

static void test_debian_systemd(void **state)
{
	_cleanup_(rm_root) char *root = debian_root();
	struct service_install in;
	assert_int_equal(service_probe(root, NULL, &in, NULL), 0);
	_cleanup_free_ char *s = render(&in, SERVICE_INIT_SYSTEMD, false);
	check_golden("debian.systemd.sh", s);
	service_install_release(&in);
}

static void test_debian_supervisord(void **state)
{
	_cleanup_(rm_root) char *root = debian_root();
	struct service_install in;
	assert_int_equal(service_probe(root, NULL, &in, NULL), 0);
	_cleanup_free_ char *s = render(&in, SERVICE_INIT_SUPERVISORD, false);
	check_golden("debian.supervisord.conf", s);
	_cleanup_free_ char *full = render(&in, SERVICE_INIT_SUPERVISORD, true);
	check_golden("debian.supervisord-full.conf", full);
	/* the full file is the fragment with a header: the programs are the same */
	assert_non_null(strstr(full, strstr(s, "\n[program:")));
	service_install_release(&in);
}

/* Split daemons (Fedora-like) in /usr/sbin, with packaged user units for virtqemud and virtnetworkd
 * but not for virtlogd: the packaged ones are only enabled, the missing one is written. libvirtd is
 * installed too and loses to the split daemons. */
static void test_split(void **state)
{
	_cleanup_(rm_root) char *root = make_root();
	put(root, "/usr/sbin/virtqemud", 0755);
	put(root, "/usr/sbin/virtnetworkd", 0755);
	put(root, "/usr/sbin/virtlogd", 0755);
	put(root, "/usr/sbin/libvirtd", 0755);
	put(root, "/usr/lib/systemd/user/virtqemud.socket", 0644);
	put(root, "/usr/lib/systemd/user/virtnetworkd.socket", 0644);
	struct service_install in;
	assert_int_equal(service_probe(root, NULL, &in, NULL), 0);
	assert_true(in.user_unit[SERVICE_VIRTQEMUD]);
	assert_true(in.user_unit[SERVICE_VIRTNETWORKD]);
	assert_false(in.user_unit[SERVICE_VIRTLOGD]);
	_cleanup_free_ char *sd = render(&in, SERVICE_INIT_SYSTEMD, false);
	check_golden("split.systemd.sh", sd);
	assert_null(strstr(sd, "libvirtd"));
	_cleanup_free_ char *sv = render(&in, SERVICE_INIT_SUPERVISORD, false);
	check_golden("split.supervisord.conf", sv);
	service_install_release(&in);
}

/* PATH comes first; relative entries and files that are not executable are skipped; /usr/libexec
 * is searched too. */
static void test_probe_order(void **state)
{
	_cleanup_(rm_root) char *root = make_root();
	put(root, "/opt/libvirt/bin/libvirtd", 0755);
	put(root, "/usr/sbin/libvirtd", 0755);
	put(root, "/usr/bin/virtlogd", 0644);
	put(root, "/usr/libexec/virtlogd", 0755);
	put(root, "/usr/sbin/virtqemud", 0755);
	_cleanup_free_ char *dir = xasprintf("%s/usr/local/sbin/virtnetworkd", root); /* a directory */
	assert_int_equal(mkdir_p(dir, 0755), 0);
	struct service_install in;
	assert_int_equal(service_probe(root, "bin::/opt/libvirt/bin:/usr/bin", &in, NULL), 0);
	assert_string_equal(in.bin[SERVICE_LIBVIRTD], "/opt/libvirt/bin/libvirtd");
	assert_string_equal(in.bin[SERVICE_VIRTLOGD], "/usr/libexec/virtlogd");
	assert_string_equal(in.bin[SERVICE_VIRTQEMUD], "/usr/sbin/virtqemud");
	assert_null(in.bin[SERVICE_VIRTNETWORKD]);
	/* virtqemud without virtnetworkd: no network program */
	_cleanup_free_ char *sv = render(&in, SERVICE_INIT_SUPERVISORD, false);
	assert_non_null(strstr(sv, "command=/usr/sbin/virtqemud --timeout 0\n"));
	assert_non_null(strstr(sv, "command=/usr/libexec/virtlogd --timeout 0\n"));
	assert_null(strstr(sv, "virtnetworkd"));
	assert_null(strstr(sv, "libvirtd"));
	service_install_release(&in);
}

static void test_nothing_installed(void **state)
{
	_cleanup_(rm_root) char *root = make_root();
	put(root, "/usr/sbin/virtlogd", 0755); /* a log daemon alone serves nothing */
	struct service_install in;
	assert_int_equal(service_probe(root, "/usr/bin", &in, NULL), 0);
	for (int init = SERVICE_INIT_SYSTEMD; init <= SERVICE_INIT_SUPERVISORD; init++) {
		struct service_render_opts o = {.init = init, .runtime_dir = RUNTIME};
		_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
		struct hutch_error err = {0};
		assert_int_equal(service_render(&in, &o, &sb, &err), -ENOENT);
		assert_int_equal(err.code, ENOENT);
		check_golden("missing.err", err.msg);
		assert_int_equal(sb.len, 0);
		hutch_error_clear(&err);
	}
	service_install_release(&in);
}

static void test_bad_options(void **state)
{
	struct service_install in = {.bin[SERVICE_LIBVIRTD] = xstrdup("/usr/sbin/libvirtd")};
	_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
	struct hutch_error err = {0};
	struct service_render_opts o = {.init = SERVICE_INIT_SYSTEMD, .full = true, .runtime_dir = RUNTIME};
	assert_int_equal(service_render(&in, &o, &sb, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "supervisord only"));
	hutch_error_clear(&err);

	o = (struct service_render_opts){.init = SERVICE_INIT_SUPERVISORD, .full = true};
	assert_int_equal(service_render(&in, &o, &sb, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "XDG_RUNTIME_DIR is not set"));
	hutch_error_clear(&err);

	/* sun_path holds 107 bytes and a NUL: the admin socket, the longest path, must fit */
	char dir[128];
	size_t fits = 107 - strlen("/libvirt/libvirt-admin-sock");
	memset(dir, 'r', fits);
	dir[0] = '/';
	dir[fits] = '\0';
	o = (struct service_render_opts){.init = SERVICE_INIT_SUPERVISORD, .full = true, .runtime_dir = dir};
	assert_int_equal(service_render(&in, &o, &sb, &err), 0);
	strbuf_reset(&sb);
	strcat(dir, "r");
	for (int init = SERVICE_INIT_SYSTEMD; init <= SERVICE_INIT_SUPERVISORD; init++) {
		o = (struct service_render_opts){.init = init, .runtime_dir = dir};
		assert_int_equal(service_render(&in, &o, &sb, &err), -ENAMETOOLONG);
		assert_non_null(
			strstr(err.msg, "/libvirt/libvirt-admin-sock' is too long for a unix socket (108 bytes"));
		hutch_error_clear(&err);
	}
	assert_int_equal(sb.len, 0);
	service_install_release(&in);
}

static void test_init_names(void **state)
{
	assert_string_equal(service_init_names[SERVICE_INIT_SYSTEMD], "systemd");
	assert_string_equal(service_init_names[SERVICE_INIT_SUPERVISORD], "supervisord");
	assert_null(service_init_names[SERVICE_INIT_SUPERVISORD + 1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_debian_probe),	   cmocka_unit_test(test_debian_systemd),
		cmocka_unit_test(test_debian_supervisord), cmocka_unit_test(test_split),
		cmocka_unit_test(test_probe_order),	   cmocka_unit_test(test_nothing_installed),
		cmocka_unit_test(test_bad_options),	   cmocka_unit_test(test_init_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
