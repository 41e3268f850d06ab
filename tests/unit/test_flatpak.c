/* flatpak: app ID rules, and the plan for run --flatpak (shares, data dir, guest user, commands)
 * against installations laid out in a temp dir the way flatpak lays them out. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>
#include <sys/stat.h>

#include "flatpak.h"

#define UNUSED __attribute__((unused))

static void test_app_ids(void **state UNUSED)
{
	assert_true(flatpak_valid_app_id("org.test.Hello"));
	assert_true(flatpak_valid_app_id("org.mozilla.firefox"));
	assert_true(flatpak_valid_app_id("com.example.My_App"));
	assert_true(flatpak_valid_app_id("io.github.foo.bar-baz"));
	assert_false(flatpak_valid_app_id(NULL));
	assert_false(flatpak_valid_app_id(""));
	assert_false(flatpak_valid_app_id("org.test"));		   /* two elements */
	assert_false(flatpak_valid_app_id("org..Hello"));	   /* empty element */
	assert_false(flatpak_valid_app_id("org.test.Hello."));	   /* trailing dot */
	assert_false(flatpak_valid_app_id("org.1test.Hello"));	   /* starts with a digit */
	assert_false(flatpak_valid_app_id("org.te-st.Hello"));	   /* '-' before the last element */
	assert_false(flatpak_valid_app_id("org.test.He llo"));	   /* blank */
	assert_false(flatpak_valid_app_id("org.test.Hello/../x")); /* path */
	assert_false(flatpak_valid_app_id("org.test.Hel,lo"));	   /* comma (a QEMU option separator) */
	char longid[300];
	memset(longid, 'a', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = 0;
	longid[3] = longid[7] = '.';
	assert_false(flatpak_valid_app_id(longid));
}

struct fx {
	char root[64];
	char *sys, *usr, *home;
	struct store st;
};

static void install(const char *dir, const char *app)
{
	_cleanup_free_ char *p = xasprintf("%s/app/%s/x86_64/master/abc123", dir, app);
	assert_int_equal(mkdir_p(p, 0755), 0);
	_cleanup_free_ char *cur = xasprintf("%s/app/%s/current", dir, app);
	assert_int_equal(symlink("x86_64/master", cur), 0);
	_cleanup_free_ char *act = xasprintf("%s/app/%s/x86_64/master/active", dir, app);
	assert_int_equal(symlink("abc123", act), 0);
}

static void fx_init(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->root, sizeof(f->root), "/tmp/hutch-flatpak-XXXXXX");
	assert_non_null(mkdtemp(f->root));
	f->sys = xasprintf("%s/var/lib/flatpak", f->root);
	f->usr = xasprintf("%s/home/u/.local/share/flatpak", f->root);
	f->home = xasprintf("%s/home/u", f->root);
	assert_int_equal(mkdir_p(f->sys, 0755), 0);
	assert_int_equal(mkdir_p(f->usr, 0755), 0);
	f->st.data_dir = xasprintf("%s/data/hutch", f->root);
}

static void fx_release(struct fx *f)
{
	rm_rf(f->root);
	free(f->sys);
	free(f->usr);
	free(f->home);
	free(f->st.data_dir);
}

static struct flatpak_in fx_in(const struct fx *f, const char *app)
{
	return (struct flatpak_in){.app_id = app,
				   .base = "apps",
				   .system_dir = f->sys,
				   .user_dir = f->usr,
				   .uid = 1000,
				   .gid = 1000,
				   .home = f->home,
				   .user_name = "alice"};
}

static bool strv_has(char *const *v, const char *s)
{
	for (; v && *v; v++)
		if (!strcmp(*v, s))
			return true;
	return false;
}

static void test_plan(void **state UNUSED)
{
	struct fx f;
	fx_init(&f);
	install(f.usr, "org.test.Hello");
	char *args[] = {"a b", "--x", NULL};
	char *env[] = {"K=V", NULL};
	struct flatpak_in in = fx_in(&f, "org.test.Hello");
	in.args = args;
	in.env = env;
	struct flatpak_plan p;
	struct hutch_error err = {0};
	assert_int_equal(flatpak_plan(&f.st, &in, &p, &err), 0);
	/* both installations read-only (the system one at the guest's own path), the data dir read-write */
	_cleanup_free_ char *s0 = xasprintf("%s:/var/lib/flatpak:ro", f.sys);
	_cleanup_free_ char *s1 = xasprintf("%s:%s/.local/share/flatpak:ro", f.usr, f.home);
	_cleanup_free_ char *data = xasprintf("%s/flatpak/apps/org.test.Hello", f.st.data_dir);
	_cleanup_free_ char *s2 = xasprintf("%s:%s/.var/app/org.test.Hello", data, f.home);
	assert_int_equal(strv_len(p.shares), 3);
	assert_string_equal(p.shares[0], s0);
	assert_string_equal(p.shares[1], s1);
	assert_string_equal(p.shares[2], s2);
	assert_string_equal(p.data_dir, data);
	struct stat sb;
	assert_int_equal(stat(data, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	assert_int_equal(sb.st_mode & 077, 0);
	/* the guest user: the host's uid, never root; the app's own arguments, unsplit */
	assert_string_equal(p.user, "1000");
	assert_string_equal(p.run_argv[0], "flatpak");
	assert_string_equal(p.run_argv[1], "run");
	assert_string_equal(p.run_argv[2], "org.test.Hello");
	assert_string_equal(p.run_argv[3], "a b");
	assert_string_equal(p.run_argv[4], "--x");
	assert_null(p.run_argv[5]);
	_cleanup_free_ char *h = xasprintf("HOME=%s", f.home);
	assert_true(strv_has(p.run_env, h));
	assert_true(strv_has(p.run_env, "XDG_RUNTIME_DIR=/run/user/1000"));
	assert_true(strv_has(p.run_env, "K=V"));
	/* the prep script gets its inputs as variables, not spliced into its text */
	assert_string_equal(p.prep_argv[0], "/bin/sh");
	assert_null(strstr(p.prep_argv[2], "alice"));
	assert_true(strv_has(p.prep_env, "HUTCH_FP_NAME=alice"));
	assert_true(strv_has(p.prep_env, "HUTCH_FP_UID=1000"));
	flatpak_plan_release(&p);

	/* --shared-data: the host's own ~/.var/app/APP-ID, made when missing */
	in.shared_data = true;
	assert_int_equal(flatpak_plan(&f.st, &in, &p, &err), 0);
	_cleanup_free_ char *own = xasprintf("%s/.var/app/org.test.Hello", f.home);
	assert_string_equal(p.data_dir, own);
	assert_int_equal(stat(own, &sb), 0);
	flatpak_plan_release(&p);
	fx_release(&f);
}

static void test_plan_errors(void **state UNUSED)
{
	struct fx f;
	fx_init(&f);
	install(f.sys, "org.test.Sys");
	struct flatpak_plan p;
	struct hutch_error err = {0};

	struct flatpak_in in = fx_in(&f, "org.test.Missing");
	assert_int_equal(flatpak_plan(&f.st, &in, &p, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "flatpak app 'org.test.Missing' is installed neither in"));
	hutch_error_clear(&err);

	in = fx_in(&f, "not-an-id");
	assert_int_equal(flatpak_plan(&f.st, &in, &p, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "--flatpak 'not-an-id': not a flatpak app ID"));
	hutch_error_clear(&err);

	in = fx_in(&f, "org.test.Sys");
	in.uid = 0;
	assert_int_equal(flatpak_plan(&f.st, &in, &p, &err), -EPERM);
	assert_non_null(strstr(err.msg, "run hutch as your own user"));
	hutch_error_clear(&err);

	in = fx_in(&f, "org.test.Sys");
	in.home = "/home/a:b";
	assert_int_equal(flatpak_plan(&f.st, &in, &p, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "HOME '/home/a:b'"));
	hutch_error_clear(&err);

	/* a spec whose home: or share sits at HOME or above it would hide the mounts beneath HOME */
	_cleanup_(spec_freep) struct vm_spec *sp = spec_new("apps");
	sp->source = SOURCE_OCI;
	sp->home = HOME_PATH;
	sp->home_path = xstrdup("/somewhere");
	sp->ssh_user = xstrdup("u");
	in = fx_in(&f, "org.test.Sys");
	in.home = "/home/u";
	in.spec = sp;
	assert_int_equal(flatpak_plan(&f.st, &in, &p, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "VM 'apps' has home: (mounted at '/home/u')"));
	hutch_error_clear(&err);
	sp->home = HOME_OFF;
	sp->shares = xcalloc(1, sizeof(*sp->shares));
	sp->shares[0] = (struct share){.name = xstrdup("all"), .path = xstrdup("/x"), .mount = xstrdup("/home/")};
	sp->n_shares = 1;
	assert_int_equal(flatpak_plan(&f.st, &in, &p, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "share 'all' is mounted at '/home/'"));
	hutch_error_clear(&err);
	free(sp->shares[0].mount);
	sp->shares[0].mount = xstrdup("/home/uu"); /* a sibling, not a parent */
	in.home = f.home;
	assert_int_equal(flatpak_plan(&f.st, &in, &p, &err), 0);
	flatpak_plan_release(&p);

	/* installed system-wide only, and no user installation: one share fewer; an odd host user name
	 * becomes "hutch" in the guest */
	rm_rf(f.usr);
	in = fx_in(&f, "org.test.Sys");
	in.user_name = "Bad:Name";
	assert_int_equal(flatpak_plan(&f.st, &in, &p, &err), 0);
	assert_int_equal(strv_len(p.shares), 2);
	assert_true(strv_has(p.prep_env, "HUTCH_FP_NAME=hutch"));
	flatpak_plan_release(&p);
	fx_release(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_app_ids),
		cmocka_unit_test(test_plan),
		cmocka_unit_test(test_plan_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
