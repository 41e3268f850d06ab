/* Unit tests for src/lib/autostart.c: the rendered unit (golden files, systemd-analyze verify), quoting,
 * and on/off against a throwaway HUTCH_HOME. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "autostart.h"

#ifndef SRCDIR
#define SRCDIR "."
#endif

#define GOLDEN_DIR SRCDIR "/tests/golden/autostart/"
#include "golden.h"

static char *render(const char *name, const char *hutch, const char *home)
{
	struct autostart_unit u = {name, hutch, home};
	struct hutch_error err = {0};
	char *text = NULL;
	if (autostart_render_unit(&u, &text, &err) < 0)
		fail_msg("%s", err.msg);
	return text;
}

static void test_render_golden(void **state)
{
	_cleanup_free_ char *plain = render("web", "/usr/bin/hutch", NULL);
	check_golden("web.service", plain);
	/* paths that need quoting and escaping: a space, a quote, '%' and '$' */
	_cleanup_free_ char *odd = render("db-2", "/opt/my tools/hutch$1", "/home/a\"b/100%");
	check_golden("db-2-hutch-home.service", odd);
}

static void test_quote(void **state)
{
	static const struct {
		const char *in;
		bool exec;
		const char *want;
	} cases[] = {
		{"/usr/bin/hutch", true, "/usr/bin/hutch"},
		{"/a b", true, "\"/a b\""},
		{"50%", true, "50%%"},
		{"$HOME", true, "$$HOME"},
		{"$HOME", false, "$HOME"},
		{"a\"b\\c", true, "\"a\\\"b\\\\c\""},
		{"x;y", true, "\"x;y\""},
		{"", true, "\"\""},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct strbuf sb = STRBUF_INIT;
		autostart_quote(&sb, cases[i].in, cases[i].exec);
		assert_string_equal(strbuf_str(&sb), cases[i].want);
		strbuf_release(&sb);
	}
}

static void test_render_errors(void **state)
{
	static const struct autostart_unit bad[] = {
		{"web", "hutch", NULL},
		{"web", "/usr/bin/hutch\n[Service]", NULL},
		{"Web", "/usr/bin/hutch", NULL},
		{"web", "/usr/bin/hutch", "rel/home"},
		{"web", "/usr/bin/hutch", "/x\ny"},
		{NULL, "/usr/bin/hutch", NULL},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct hutch_error err = {0};
		char *text = NULL;
		assert_int_equal(autostart_render_unit(&bad[i], &text, &err), -EINVAL);
		assert_null(text);
		assert_non_null(err.msg);
		hutch_error_clear(&err);
	}
}

static bool have_prog(const char *name)
{
	_cleanup_free_ char *cmd = xasprintf("command -v %s >/dev/null 2>&1", name);
	return system(cmd) == 0;
}

/* systemd-analyze verify needs the Exec binaries to exist: point them at the built hutch. */
static void test_systemd_analyze_verify(void **state)
{
	if (!have_prog("systemd-analyze")) {
		fprintf(stderr, "skip: systemd-analyze is not installed (apt-get install systemd)\n");
		skip();
		return;
	}
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	assert_true(n > 0);
	self[n] = 0;
	*strrchr(self, '/') = 0;
	_cleanup_free_ char *hutch = xasprintf("%s/hutch", self);
	if (access(hutch, X_OK) < 0) {
		free(hutch);
		hutch = xstrdup("/bin/true");
	}
	char dir[] = "/tmp/hutch-test-autostart.XXXXXX";
	assert_non_null(mkdtemp(dir));
	const char *homes[] = {NULL, "/tmp/a home/100%"};
	for (size_t i = 0; i < ARRAY_SIZE(homes); i++) {
		_cleanup_free_ char *text = render("web", hutch, homes[i]);
		_cleanup_free_ char *unit = xasprintf("%s/hutch-web.service", dir);
		assert_int_equal(write_file_atomic(unit, text, strlen(text), 0644, NULL), 0);
		/* --user needs a runtime dir, not a running manager; --man=no: hutch(1) may not be installed yet.
		 * Any output is a finding: a bad Type= is only a warning. */
		_cleanup_free_ char *cmd = xasprintf(
			"cd '%s' && XDG_RUNTIME_DIR='%s' systemd-analyze verify --user --man=no ./hutch-web.service "
			">out 2>&1",
			dir, dir);
		int st = system(cmd);
		_cleanup_free_ char *outp = xasprintf("%s/out", dir);
		_cleanup_free_ char *out = NULL;
		read_file(outp, 1 << 20, &out, NULL, NULL);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || (out && *out))
			fail_msg("systemd-analyze verify: status %d:\n%s\n%s", st, out ? out : "", text);
	}
	rm_rf(dir);
}

static bool is_link_to(const char *path, const char *target)
{
	char buf[256];
	ssize_t n = readlink(path, buf, sizeof(buf) - 1);
	if (n < 0)
		return false;
	buf[n] = 0;
	return !strcmp(buf, target);
}

static void test_on_off(void **state)
{
	char home[] = "/tmp/hutch-test-autostart-home.XXXXXX";
	assert_non_null(mkdtemp(home));
	setenv("HUTCH_HOME", home, 1);
	struct hutch_error err = {0};
	_cleanup_free_ char *dir = NULL;
	assert_int_equal(autostart_unit_dir(&dir, &err), 0);
	_cleanup_free_ char *want_dir = xasprintf("%s/config/systemd/user", home);
	assert_string_equal(dir, want_dir);
	_cleanup_free_ char *unit = xasprintf("%s/hutch-web.service", dir);
	_cleanup_free_ char *link = xasprintf("%s/default.target.wants/hutch-web.service", dir);

	assert_false(autostart_is_on("web"));
	struct autostart_result r = {0};
	if (autostart_enable("web", NULL, &r, &err) < 0)
		fail_msg("%s", err.msg);
	assert_true(r.changed);
	assert_string_equal(r.unit_path, unit);
	assert_true(autostart_is_on("web"));
	assert_true(is_link_to(link, "../hutch-web.service"));
	/* HUTCH_HOME: systemd is not told; the warning says how to hand the unit over */
	assert_int_equal(strv_len(r.warnings), 1);
	assert_non_null(strstr(r.warnings[0], "systemctl --user enable "));
	assert_non_null(strstr(r.warnings[0], unit));
	_cleanup_free_ char *text = NULL;
	assert_int_equal(read_file(unit, 1 << 20, &text, NULL, NULL), 0);
	_cleanup_free_ char *env = xasprintf("\nEnvironment=HUTCH_HOME=%s\n", home);
	assert_non_null(strstr(text, env));
	struct stat st;
	assert_int_equal(stat(unit, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	autostart_result_release(&r);

	/* twice: nothing to write */
	assert_int_equal(autostart_enable("web", NULL, &r, &err), 0);
	assert_false(r.changed);
	autostart_result_release(&r);

	/* the backend hook goes by the stored VM: "web" is none, so no domain flag and nothing to say
	 * (a libvirt VM's virDomainSetAutostart is tested against libvirt in 63-libvirt) */
	struct vm_spec *spec = spec_new("web");
	spec->backend = xstrdup("libvirt");
	assert_int_equal(autostart_enable("web", spec, &r, &err), 0);
	assert_int_equal(strv_len(r.warnings), 1);
	autostart_result_release(&r);
	spec_free(spec);

	assert_int_equal(autostart_disable("web", &r, &err), 0);
	assert_true(r.changed);
	assert_null(r.warnings);
	assert_false(autostart_is_on("web"));
	assert_int_equal(access(unit, F_OK), -1);
	assert_int_equal(lstat(link, &st), -1);
	autostart_result_release(&r);
	assert_int_equal(autostart_disable("web", &r, &err), 0);
	assert_false(r.changed);
	autostart_result_release(&r);

	assert_int_equal(autostart_disable("../x", &r, &err), -EINVAL);
	hutch_error_clear(&err);
	unsetenv("HUTCH_HOME");
	rm_rf(home);
}

static void test_unit_dir(void **state)
{
	unsetenv("HUTCH_HOME");
	setenv("XDG_CONFIG_HOME", "/x/cfg", 1);
	char *d = NULL;
	assert_int_equal(autostart_unit_dir(&d, NULL), 0);
	assert_string_equal(d, "/x/cfg/systemd/user");
	free(d);
	setenv("XDG_CONFIG_HOME", "relative", 1); /* ignored, as XDG says */
	setenv("HOME", "/home/u", 1);
	assert_int_equal(autostart_unit_dir(&d, NULL), 0);
	assert_string_equal(d, "/home/u/.config/systemd/user");
	free(d);
	unsetenv("XDG_CONFIG_HOME");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render_golden), cmocka_unit_test(test_quote),
		cmocka_unit_test(test_render_errors), cmocka_unit_test(test_systemd_analyze_verify),
		cmocka_unit_test(test_on_off),	      cmocka_unit_test(test_unit_dir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
