/* shares: planning (host checks, via, the xattr fallback, the home dir), the --share flag, and the
 * QEMU argv of 9p and virtiofs shares on both machines against golden files
 * (HUTCH_UPDATE_GOLDEN=1 regenerates them). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "domain_xml.h"
#include "qemu.h"
#include "shares.h"
#include "spec.h"

#define UNUSED __attribute__((unused))
#define GOLDEN_DIR SRCDIR "/tests/golden/argv/"
#include "golden.h"

static const struct accel_info accel_tcg = {.kvm = false, .why = "test", .tsc_khz = 2000000};
static const struct shares_host no_virtiofsd = {.virtiofsd = NULL, .userns = true};
static const struct shares_host virtiofsd_15 = {.virtiofsd = "/usr/libexec/virtiofsd", .userns = true};
static const struct shares_host virtiofsd_ro = {
	.virtiofsd = "/usr/libexec/virtiofsd", .readonly = true, .userns = true};

static void add_share(struct vm_spec *s, const char *name, const char *path, const char *mount, bool ro,
		      enum share_via via)
{
	s->shares = xrealloc(s->shares, (s->n_shares + 1) * sizeof(*s->shares));
	s->shares[s->n_shares++] = (struct share){.name = xstrdup(name),
						  .path = xstrdup(path),
						  .mount = mount ? xstrdup(mount) : NULL,
						  .readonly = ro,
						  .via = via};
}

static struct vm_spec *spec_with_shares(enum source_kind src, enum share_via via)
{
	struct vm_spec *s = spec_new(src == SOURCE_TEMPLATE ? "web" : "deb");
	s->source = src;
	if (src == SOURCE_TEMPLATE)
		s->template = xstrdup("micro");
	else
		s->image = xstrdup("https://example.org/debian-12-genericcloud-amd64.qcow2");
	s->memory = 512ull << 20;
	s->cpus = 1;
	s->net_mode = NET_NONE;
	add_share(s, "bank", "/home/user/bank", "/mnt/bank", true, via);
	add_share(s, "work", "/home/user/my,work", NULL, false, via);
	s->home = HOME_PATH;
	s->home_path = xstrdup("/home/user/.local/share/hutch/homes/web");
	s->ssh_user = xstrdup("debian");
	return s;
}

static void plan(const struct vm_spec *s, const struct shares_host *h, enum shares_check check, struct shares *ret)
{
	struct hutch_error err = {0};
	struct shares_in in = {.vm_name = s->name,
			       .spec = s,
			       .run_dir = "/run/user/1000/hutch/web",
			       .data_dir = "/home/user/.local/share/hutch",
			       .host = h,
			       .check = check};
	if (shares_plan(&in, ret, &err) < 0)
		fail_msg("shares_plan: %s", err.msg);
}

static char *render(const struct vm_spec *s, const struct shares *sh)
{
	bool micro = s->source == SOURCE_TEMPLATE;
	struct qemu_config c = {
		.name = s->name,
		.spec = s,
		.binary = "/usr/bin/qemu-system-x86_64",
		.run_dir = "/run/user/1000/hutch/web",
		.vm_dir = "/home/user/.local/share/hutch/vms/web",
		.kernel = micro ? "/usr/lib/hutch/micro/vmlinuz" : NULL,
		.initrd = micro ? "/usr/lib/hutch/micro/initrd.img" : NULL,
		.disk = micro ? NULL : "/home/user/.local/share/hutch/vms/deb/disk.qcow2",
		.accel = &accel_tcg,
		.shares = sh,
	};
	char **argv = NULL;
	struct hutch_error err = {0};
	if (qemu_build_argv(&c, &argv, &err) < 0)
		fail_msg("qemu_build_argv: %s", err.msg);
	char *r = qemu_render_argv(argv);
	strv_free(argv);
	return r;
}

static void golden(enum source_kind src, enum share_via via, const struct shares_host *h, const char *file)
{
	_cleanup_(spec_freep) struct vm_spec *s = spec_with_shares(src, via);
	_cleanup_(shares_releasep) struct shares sh = {0};
	plan(s, h, SHARES_RENDER, &sh);
	_cleanup_free_ char *r = render(s, &sh);
	check_golden(file, r);
}

static void test_golden_micro_9p(void **state UNUSED)
{
	golden(SOURCE_TEMPLATE, SHARE_9P, &no_virtiofsd, "micro-shares-9p.txt");
}
static void test_golden_q35_9p(void **state UNUSED)
{
	golden(SOURCE_IMAGE, SHARE_9P, &no_virtiofsd, "image-shares-9p.txt");
}
static void test_golden_micro_virtiofs(void **state UNUSED)
{
	golden(SOURCE_TEMPLATE, SHARE_VIRTIOFS, &virtiofsd_ro, "micro-shares-virtiofs.txt");
}
static void test_golden_q35_virtiofs(void **state UNUSED)
{
	golden(SOURCE_IMAGE, SHARE_VIRTIOFS, &virtiofsd_ro, "image-shares-virtiofs.txt");
}

/* The facts the goldens show, spelled out so a regenerated golden cannot quietly lose them. */
static void test_argv_facts(void **state UNUSED)
{
	_cleanup_(spec_freep) struct vm_spec *s = spec_with_shares(SOURCE_TEMPLATE, SHARE_9P);
	_cleanup_(shares_releasep) struct shares sh = {0};
	plan(s, &no_virtiofsd, SHARES_RENDER, &sh);
	_cleanup_free_ char *r = render(s, &sh);
	assert_non_null(strstr(r, "local,id=fs0,path=/home/user/bank,security_model=none,multidevs=remap,"
				  "readonly=on"));
	assert_non_null(strstr(r, "path=/home/user/my,,work,security_model=mapped-xattr,multidevs=remap \\"));
	assert_non_null(strstr(r, "virtio-9p-device,fsdev=fs0,mount_tag=bank"));
	assert_non_null(strstr(r, "hutch.share=bank,/mnt/bank,ro,9p hutch.share=work,/mnt/work,rw,9p "
				  "hutch.share=home,/root,rw,9p,home"));
	assert_null(strstr(r, "memory-backend"));

	_cleanup_(spec_freep) struct vm_spec *v = spec_with_shares(SOURCE_IMAGE, SHARE_VIRTIOFS);
	_cleanup_(shares_releasep) struct shares vs = {0};
	plan(v, &virtiofsd_ro, SHARES_RENDER, &vs);
	_cleanup_free_ char *rv = render(v, &vs);
	assert_non_null(strstr(rv, "q35,smm=off,memory-backend=mem"));
	assert_non_null(strstr(rv, "memory-backend-memfd,id=mem,size=512M,share=on"));
	assert_non_null(strstr(rv, "vhost-user-fs-pci,chardev=vfs0,tag=bank"));
	assert_non_null(strstr(rv, "socket,id=vfs2,path=/run/user/1000/hutch/web/fs-home.sock"));
	assert_string_equal(vs.v[2].mount, "/home/debian");
}

static void test_via_auto(void **state UNUSED)
{
	_cleanup_(spec_freep) struct vm_spec *s = spec_with_shares(SOURCE_TEMPLATE, SHARE_AUTO);
	struct shares a = {0}, b = {0}, c = {0};
	plan(s, &no_virtiofsd, SHARES_RENDER, &a);
	for (size_t i = 0; i < a.n; i++) {
		assert_int_equal(a.v[i].via, SHARE_9P);
		assert_non_null(strstr(a.v[i].why, "virtiofsd is not installed"));
	}
	/* 1.5 has no --readonly: the read-only share stays on 9p, where QEMU enforces it */
	plan(s, &virtiofsd_15, SHARES_RENDER, &b);
	assert_int_equal(b.v[0].via, SHARE_9P);
	assert_non_null(strstr(b.v[0].why, "--readonly"));
	assert_int_equal(b.v[1].via, SHARE_VIRTIOFS);
	struct shares_host no_userns = virtiofsd_ro;
	no_userns.userns = false;
	plan(s, &no_userns, SHARES_RENDER, &c);
	assert_int_equal(c.v[1].via, SHARE_9P);
	assert_non_null(strstr(c.v[1].why, "user namespaces"));
	shares_release(&a);
	shares_release(&b);
	shares_release(&c);
}

static char *tmpdir(void)
{
	char t[] = "/tmp/hutch-shares-XXXXXX";
	assert_non_null(mkdtemp(t));
	return xstrdup(t);
}

static int plan_err(const struct vm_spec *s, const struct shares_host *h, const char *data_dir, char **msg)
{
	struct hutch_error err = {0};
	struct shares sh = {0};
	struct shares_in in = {.vm_name = s->name,
			       .spec = s,
			       .run_dir = "/tmp",
			       .data_dir = data_dir,
			       .host = h,
			       .check = SHARES_START};
	int r = shares_plan(&in, &sh, &err);
	shares_release(&sh);
	*msg = err.msg;
	return r;
}

static void test_host_dir_checks(void **state UNUSED)
{
	_cleanup_free_ char *d = tmpdir();
	_cleanup_free_ char *file = xasprintf("%s/file", d);
	assert_int_equal(write_file_atomic(file, "x", 1, 0644, NULL), 0);
	_cleanup_free_ char *missing = xasprintf("%s/nope", d);
	struct {
		const char *path, *want;
	} cases[] = {
		{missing, "does not exist"},
		{file, "is not a directory"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		_cleanup_(spec_freep) struct vm_spec *s = spec_new("web");
		add_share(s, "docs", cases[i].path, "/mnt/docs", false, SHARE_9P);
		_cleanup_free_ char *msg = NULL;
		assert_true(plan_err(s, &no_virtiofsd, d, &msg) < 0);
		_cleanup_free_ char *want =
			xasprintf("share 'docs' of VM 'web': host path '%s' %s", cases[i].path, cases[i].want);
		assert_string_equal(msg, want);
	}
	if (geteuid() != 0) { /* root reads anything */
		_cleanup_free_ char *locked = xasprintf("%s/locked", d);
		assert_int_equal(mkdir(locked, 0), 0);
		_cleanup_(spec_freep) struct vm_spec *s = spec_new("web");
		add_share(s, "docs", locked, "/mnt/docs", true, SHARE_9P);
		_cleanup_free_ char *msg = NULL;
		assert_true(plan_err(s, &no_virtiofsd, d, &msg) < 0);
		assert_non_null(strstr(msg, "is not readable"));
		rmdir(locked);
	}
	/* explicit virtiofs without virtiofsd is refused at start, naming the share */
	_cleanup_(spec_freep) struct vm_spec *s = spec_new("web");
	add_share(s, "docs", d, "/mnt/docs", false, SHARE_VIRTIOFS);
	_cleanup_free_ char *msg = NULL;
	assert_true(plan_err(s, &no_virtiofsd, d, &msg) < 0);
	assert_non_null(strstr(msg, "share 'docs' of VM 'web' asks for virtiofs, but virtiofsd is not installed"));
	rm_rf(d);
}

/* /proc keeps no user xattrs: a read-write 9p share there falls back to security_model=none with a
 * warning; a read-only one uses none anyway (host-made symlinks read), without a warning. */
static void test_xattr_fallback(void **state UNUSED)
{
	_cleanup_(spec_freep) struct vm_spec *s = spec_new("web");
	s->source = SOURCE_TEMPLATE;
	add_share(s, "sysctl", "/proc/sys", "/mnt/sys", false, SHARE_9P);
	add_share(s, "sysro", "/proc/sys", "/mnt/sysro", true, SHARE_9P);
	_cleanup_free_ char *d = tmpdir();
	add_share(s, "tmp", d, "/mnt/tmp", false, SHARE_9P);
	_cleanup_(shares_releasep) struct shares sh = {0};
	plan(s, &no_virtiofsd, SHARES_START, &sh);
	assert_false(sh.v[0].xattr);
	assert_non_null(sh.v[0].warning);
	assert_non_null(strstr(sh.v[0].warning, "security_model=none"));
	assert_false(sh.v[1].xattr);
	assert_null(sh.v[1].warning);
	assert_true(sh.v[2].xattr);
	assert_null(sh.v[2].warning);
	char **argv = shares_qemu_args(NULL, &sh, true);
	assert_non_null(strstr(argv[1], "security_model=none"));
	assert_non_null(strstr(argv[5], "security_model=none"));
	assert_non_null(strstr(argv[9], "security_model=mapped-xattr"));
	strv_free(argv);
	rm_rf(d);
}

static void test_home(void **state UNUSED)
{
	_cleanup_free_ char *d = tmpdir();
	_cleanup_free_ char *tmpl = xasprintf("%s/template", d);
	_cleanup_free_ char *sub = xasprintf("%s/template/.config", d);
	_cleanup_free_ char *rc = xasprintf("%s/template/.config/rc", d);
	_cleanup_free_ char *lnk = xasprintf("%s/template/link", d);
	assert_int_equal(mkdir_p(sub, 0755), 0);
	assert_int_equal(write_file_atomic(rc, "hello\n", 6, 0640, NULL), 0);
	assert_int_equal(symlink(".config/rc", lnk), 0);

	_cleanup_(spec_freep) struct vm_spec *s = spec_new("web");
	s->source = SOURCE_TEMPLATE;
	s->home = HOME_DEFAULT;
	_cleanup_(shares_releasep) struct shares sh = {0};
	struct hutch_error err = {0};
	struct shares_in in = {.vm_name = "web",
			       .spec = s,
			       .run_dir = "/tmp",
			       .data_dir = d,
			       .home_template = tmpl,
			       .host = &no_virtiofsd,
			       .check = SHARES_START};
	assert_int_equal(shares_plan(&in, &sh, &err), 0);
	assert_int_equal(sh.n, 1);
	assert_string_equal(sh.v[0].tag, "home");
	assert_string_equal(sh.v[0].mount, "/root");
	_cleanup_free_ char *home = xasprintf("%s/homes/web", d);
	assert_string_equal(sh.v[0].host, home);
	_cleanup_free_ char *copied = xasprintf("%s/.config/rc", home);
	_cleanup_free_ char *text = NULL;
	assert_int_equal(read_file(copied, 100, &text, NULL, NULL), 0);
	assert_string_equal(text, "hello\n");
	struct stat st;
	assert_int_equal(stat(copied, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	_cleanup_free_ char *lcopy = xasprintf("%s/link", home);
	char target[64] = {0};
	assert_int_equal(readlink(lcopy, target, sizeof(target) - 1), 10);
	assert_string_equal(target, ".config/rc");

	/* a second start keeps what the guest wrote: the template is copied only once */
	assert_int_equal(write_file_atomic(copied, "changed\n", 8, 0640, NULL), 0);
	struct shares again = {0};
	assert_int_equal(shares_plan(&in, &again, &err), 0);
	shares_release(&again);
	free(text);
	text = NULL;
	assert_int_equal(read_file(copied, 100, &text, NULL, NULL), 0);
	assert_string_equal(text, "changed\n");

	/* a share named home collides with the home's tag */
	add_share(s, "home", d, "/mnt/h", false, SHARE_9P);
	struct shares bad = {0};
	assert_true(shares_plan(&in, &bad, &err) < 0);
	assert_non_null(strstr(err.msg, "both use the tag 'home'"));
	hutch_error_clear(&err);
	rm_rf(d);
}

static void test_share_flags(void **state UNUSED)
{
	struct store st = {.data_dir = "/data"};
	_cleanup_(spec_freep) struct vm_spec *s = spec_new("web-1234");
	add_share(s, "docs", "/srv/docs", "/mnt/docs", false, SHARE_AUTO);
	s->home = HOME_DEFAULT;
	char *flags[] = {"/srv/a:/mnt/x:ro", "rel/dir:/mnt/docs2", "/h:p:/srv/home", "/srv/b:/mnt/docs-x/", NULL};
	struct hutch_error err = {0};
	assert_int_equal(shares_apply_create(&st, "web", flags, s, &err), 0);
	assert_int_equal(s->n_shares, 5);
	assert_string_equal(s->shares[1].name, "x");
	assert_true(s->shares[1].readonly);
	assert_string_equal(s->shares[1].path, "/srv/a");
	assert_string_equal(s->shares[2].name, "docs2");
	assert_false(s->shares[2].readonly);
	assert_true(s->shares[2].path[0] == '/');
	assert_non_null(strstr(s->shares[2].path, "/rel/dir"));
	assert_string_equal(s->shares[3].path, "/h:p"); /* the last colon splits */
	assert_string_equal(s->shares[3].name, "home-2");
	assert_string_equal(s->shares[3].mount, "/srv/home");
	assert_string_equal(s->shares[4].name, "share");
	/* home: true becomes the base name's dir, so run --rm instances keep one home */
	assert_int_equal(s->home, HOME_PATH);
	assert_string_equal(s->home_path, "/data/homes/web");

	const char *bad[] = {"/srv/a",		 "/srv/a:relative", "/srv/a:/mnt/../etc",
			     "/srv/a:/mnt/docs", ":/mnt/q",	    "/srv/a:/mnt/with space"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char *f[] = {(char *)bad[i], NULL};
		assert_true(shares_apply_create(&st, "web", f, s, &err) < 0);
		assert_non_null(strstr(err.msg, "--share"));
		hutch_error_clear(&err);
	}
}

static void test_spec_keys(void **state UNUSED)
{
	const char *ok =
		"a:\n  shares:\n    docs: {path: ~/bank, mount: /mnt/bank, readonly: true, via: 9p}\n"
		"    w: {path: /srv/w, via: virtiofs}\n  home: true\nb:\n  home: ~/homes/b\nc:\n  home: false\n";
	struct vm_spec **specs;
	size_t n;
	struct hutch_error err = {0};
	assert_int_equal(spec_parse_buffer(ok, strlen(ok), "t.yml", &specs, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_int_equal(specs[0]->shares[0].via, SHARE_9P);
	assert_int_equal(specs[0]->shares[1].via, SHARE_VIRTIOFS);
	assert_null(specs[0]->shares[1].mount);
	assert_int_equal(specs[0]->home, HOME_DEFAULT);
	assert_int_equal(specs[1]->home, HOME_PATH);
	assert_string_equal(specs[1]->home_path, "~/homes/b");
	assert_int_equal(specs[2]->home, HOME_OFF);
	/* round trip */
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *y = spec_render_yaml(specs[i]);
		struct vm_spec **back;
		size_t bn;
		assert_int_equal(spec_parse_buffer(y, strlen(y), "back.yml", &back, &bn, &err), 0);
		assert_true(spec_equal(specs[i], back[0]));
		spec_free_all(back, bn);
	}
	spec_free_all(specs, n);

	struct {
		const char *yaml, *want;
	} bad[] = {
		{"a:\n  shares:\n    d: {path: /x, via: nfs}\n",
		 "t.yml:3: shares.d.via: expected auto, 9p or virtiofs"},
		{"a:\n  home: relative\n", "t.yml:2: home: expected true, false or an absolute host path"},
		{"a:\n  home: [1]\n", "t.yml:2: home: expected true, false or a host path"},
		{"a:\n  shares:\n    d: {path: /x, mount: /mnt/a b}\n",
		 "t.yml:3: shares.d.mount: must be a guest path without"},
		{"a:\n  shares:\n    d: {path: /x, mount: /m}\n    e: {path: /y, mount: /m}\n",
		 "t.yml:4: shares.e: mount point '/m' is already used by share 'd'"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_true(spec_parse_buffer(bad[i].yaml, strlen(bad[i].yaml), "t.yml", &specs, &n, &err) < 0);
		if (strncmp(err.msg, bad[i].want, strlen(bad[i].want)))
			fail_msg("case %zu: got '%s', want '%s...'", i, err.msg, bad[i].want);
		hutch_error_clear(&err);
	}
}

/* The libvirt backend: 9p shares as <filesystem type='mount'>, mapped (or squash for the fallback),
 * validated against libvirt's schema; virtiofs is refused (libvirt 9.0's session mode has none). */
static void test_domain_xml(void **state UNUSED)
{
	_cleanup_(spec_freep) struct vm_spec *s = spec_with_shares(SOURCE_TEMPLATE, SHARE_9P);
	_cleanup_(shares_releasep) struct shares sh = {0};
	plan(s, &no_virtiofsd, SHARES_RENDER, &sh);
	sh.v[1].xattr = false; /* as on a file system without user xattrs */
	struct qemu_config c = {.name = s->name, .spec = s, .accel = &accel_tcg, .shares = &sh};
	_cleanup_free_ char *cmdline = qemu_micro_cmdline(&c);
	struct domain_xml_input in = {
		.domain = "hutch-web",
		.vm_name = s->name,
		.vm_dir = "/home/user/.local/share/hutch/vms/web",
		.spec = s,
		.emulator = "/usr/bin/qemu-system-x86_64",
		.cpu = "max",
		.kernel = "/usr/lib/hutch/micro/vmlinuz",
		.initrd = "/usr/lib/hutch/micro/initrd.img",
		.cmdline = cmdline,
		.shares = &sh,
	};
	_cleanup_free_ char *xml = NULL;
	struct hutch_error err = {0};
	if (domain_xml_render(&in, &xml, &err) < 0)
		fail_msg("domain_xml_render: %s", err.msg);
	assert_non_null(strstr(xml, "<filesystem type=\"mount\" accessmode=\"mapped\" multidevs=\"remap\">"));
	assert_non_null(strstr(xml, "accessmode=\"squash\""));
	assert_non_null(strstr(xml, "<readonly/>"));
	assert_non_null(strstr(xml, "hutch.share=bank,/mnt/bank,ro,9p"));
	_cleanup_free_ char *gdir = xstrdup(SRCDIR "/tests/golden/domain/micro-shares.xml");
	check_golden("../domain/micro-shares.xml", xml); /* beside test_domain_xml's, which validates them all */
	if (access("/usr/bin/virt-xml-validate", X_OK) == 0) {
		_cleanup_free_ char *cmd = xasprintf("virt-xml-validate '%s' domain >/dev/null 2>&1", gdir);
		int st = system(cmd);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			fail_msg("micro-shares.xml does not validate against libvirt's domain schema (%s)", cmd);
	}

	_cleanup_(spec_freep) struct vm_spec *v = spec_with_shares(SOURCE_TEMPLATE, SHARE_VIRTIOFS);
	_cleanup_(shares_releasep) struct shares vs = {0};
	plan(v, &virtiofsd_ro, SHARES_RENDER, &vs);
	in.spec = v;
	in.shares = &vs;
	_cleanup_free_ char *x2 = NULL;
	assert_true(domain_xml_render(&in, &x2, &err) < 0);
	assert_non_null(strstr(err.msg, "only from 10.0"));
	hutch_error_clear(&err);

	/* and auto picks 9p for a libvirt VM even where virtiofsd is */
	struct shares_host lv = virtiofsd_ro;
	lv.libvirt = true;
	_cleanup_(spec_freep) struct vm_spec *a = spec_with_shares(SOURCE_TEMPLATE, SHARE_AUTO);
	_cleanup_(shares_releasep) struct shares as = {0};
	plan(a, &lv, SHARES_RENDER, &as);
	assert_int_equal(as.v[1].via, SHARE_9P);
	assert_non_null(strstr(as.v[1].why, "libvirt"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden_micro_9p),
		cmocka_unit_test(test_golden_q35_9p),
		cmocka_unit_test(test_golden_micro_virtiofs),
		cmocka_unit_test(test_golden_q35_virtiofs),
		cmocka_unit_test(test_argv_facts),
		cmocka_unit_test(test_via_auto),
		cmocka_unit_test(test_host_dir_checks),
		cmocka_unit_test(test_xattr_fallback),
		cmocka_unit_test(test_home),
		cmocka_unit_test(test_share_flags),
		cmocka_unit_test(test_spec_keys),
		cmocka_unit_test(test_domain_xml),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
