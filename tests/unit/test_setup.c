/* Unit tests for src/lib/setup.c: libvirt.conf editing, and a plan against a throwaway HUTCH_HOME. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>
#include <sys/stat.h>

#include "setup.h"

#define LINE SETUP_LIBVIRT_URI_LINE

/* Edits once, checks the result, then edits the result again: nothing more to do. */
static void expect_edit(const char *in, const char *want)
{
	char *out = NULL;
	if (!want) {
		assert_int_equal(setup_libvirt_conf_edit(in, &out), 0);
		assert_null(out);
		return;
	}
	assert_int_equal(setup_libvirt_conf_edit(in, &out), 1);
	assert_string_equal(out, want);
	char *again = NULL;
	assert_int_equal(setup_libvirt_conf_edit(out, &again), 0);
	assert_null(again);
	free(out);
}

static void test_no_file(void **state)
{
	expect_edit(NULL, LINE);
	expect_edit("", LINE);
}

static void test_no_line(void **state)
{
	const char *in = "# libvirt client config\n#uri_aliases = [ \"a=b\" ]\n";
	expect_edit(in, "# libvirt client config\n#uri_aliases = [ \"a=b\" ]\n" LINE);
	/* the rest of the file is kept, and a missing final newline is added before the line */
	expect_edit("auth_tls = 1", "auth_tls = 1\n" LINE);
	/* another key that merely starts like it */
	expect_edit("uri_default_x = \"a\"\n", "uri_default_x = \"a\"\n" LINE);
}

static void test_line_present(void **state)
{
	expect_edit(LINE, NULL);
	expect_edit("# mine\n  uri_default=\"qemu:///session\"\n", NULL);
	expect_edit("uri_default\t= 'qemu:///session'", NULL);
}

static void test_commented_line(void **state)
{
	/* only an uncommented line counts as set */
	const char *in = "#uri_default = \"qemu:///system\"\n";
	expect_edit(in, "#uri_default = \"qemu:///system\"\n" LINE);
	expect_edit("  # uri_default = \"qemu:///session\"\n", "  # uri_default = \"qemu:///session\"\n" LINE);
}

static void test_other_uri(void **state)
{
	/* the user's choice is respected, whatever it is */
	expect_edit("uri_default = \"qemu:///system\"\n", NULL);
	expect_edit("# first\nfoo = 1\nuri_default = \"test:///default\" # tests\n", NULL);
}

static void write_text(const char *path, const char *text)
{
	assert_int_equal(write_file_atomic(path, text, strlen(text), 0644, NULL), 0);
}

/* A fresh HUTCH_HOME: dirs, config.yml and (when libvirt is here) libvirt.conf are needed; after
 * apply, nothing is; an existing libvirt.conf keeps its content. The template step needs a kernel
 * and the agent, so it is only checked for consistency here (the integration test builds it). */
static void test_plan_idempotent(void **state)
{
	char home[] = "/tmp/hutch-test-setup.XXXXXX";
	assert_non_null(mkdtemp(home));
	setenv("HUTCH_HOME", home, 1);
	struct store st;
	assert_int_equal(store_open(&st, NULL), 0);
	struct setup_plan p;
	assert_int_equal(setup_plan_make(&st, &p, NULL), 0);
	size_t dirs = 0, configs = 0, uris = 0;
	for (size_t i = 0; i < p.n; i++) {
		const struct setup_step *s = &p.steps[i];
		dirs += s->kind == SETUP_DIR && s->needed;
		configs += s->kind == SETUP_CONFIG && s->needed;
		if (s->kind == SETUP_LIBVIRT_URI) {
			uris += s->needed;
			_cleanup_free_ char *want = xasprintf("%s/config/libvirt/libvirt.conf", home);
			assert_string_equal(s->path, want);
		}
		if (s->kind == SETUP_TEMPLATE)
			assert_true(s->needed || s->error);
	}
	assert_int_equal(dirs, 4);
	assert_int_equal(configs, 1);
	assert_int_equal(uris, setup_libvirt_installed() ? 1 : 0);
	/* --check wrote nothing */
	struct stat sb;
	_cleanup_free_ char *cfg = xasprintf("%s/config", home);
	assert_int_equal(stat(cfg, &sb), -1);

	/* a user's libvirt.conf, made between check and apply, is kept */
	if (uris) {
		_cleanup_free_ char *dir = xasprintf("%s/config/libvirt", home);
		assert_int_equal(mkdir_p(dir, 0755), 0);
		write_text(p.libvirt_conf, "# mine\nauth_tls = 1\n");
	}
	setup_apply(&p);
	for (size_t i = 0; i < p.n; i++)
		if (p.steps[i].kind != SETUP_TEMPLATE) {
			if (p.steps[i].error)
				fail_msg("%s: %s", p.steps[i].what, p.steps[i].error);
			assert_true(p.steps[i].done == p.steps[i].needed);
			if (p.steps[i].done)
				assert_non_null(p.steps[i].done_what);
		}
	_cleanup_free_ char *yml = NULL;
	assert_int_equal(read_file(p.config_yml, 1 << 20, &yml, NULL, NULL), 0);
	assert_string_equal(yml, setup_config_yml);
	if (uris) {
		_cleanup_free_ char *conf = NULL;
		assert_int_equal(read_file(p.libvirt_conf, 1 << 20, &conf, NULL, NULL), 0);
		assert_string_equal(conf, "# mine\nauth_tls = 1\n" LINE);
	}
	assert_int_equal(stat(st.runtime_dir, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);
	setup_plan_release(&p);

	/* twice: nothing but (maybe) the template is needed */
	assert_int_equal(setup_plan_make(&st, &p, NULL), 0);
	for (size_t i = 0; i < p.n; i++)
		if (p.steps[i].kind != SETUP_TEMPLATE)
			assert_false(p.steps[i].needed);
	setup_plan_release(&p);

	/* a user's config.yml is never overwritten */
	_cleanup_free_ char *mine = xasprintf("%s/config/config.yml", home);
	write_text(mine, "backend: qemu\n");
	assert_int_equal(setup_plan_make(&st, &p, NULL), 0);
	setup_apply(&p);
	setup_plan_release(&p);
	_cleanup_free_ char *kept = NULL;
	assert_int_equal(read_file(mine, 1 << 20, &kept, NULL, NULL), 0);
	assert_string_equal(kept, "backend: qemu\n");

	store_release(&st);
	unsetenv("HUTCH_HOME");
	rm_rf(home);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_file),	     cmocka_unit_test(test_no_line),
		cmocka_unit_test(test_line_present), cmocka_unit_test(test_commented_line),
		cmocka_unit_test(test_other_uri),    cmocka_unit_test(test_plan_idempotent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
