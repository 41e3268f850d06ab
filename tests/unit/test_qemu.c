/* qemu: argv rendering against golden files, the micro kernel command line, forward checks.
 * Regenerate the goldens with HUTCH_UPDATE_GOLDEN=1 and review the diff. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "qemu.h"
#include "spec.h"

#define UNUSED __attribute__((unused))
#define GOLDEN_DIR SRCDIR "/tests/golden/argv/"

static const struct accel_info accel_tcg = {.kvm = false, .why = "test", .tsc_khz = 2000000};
static const struct accel_info accel_kvm = {.kvm = true, .why = "", .tsc_khz = 2000000};

static struct vm_spec *micro_spec(void)
{
	struct vm_spec *s = spec_new("web");
	s->source = SOURCE_TEMPLATE;
	s->template = xstrdup("micro");
	s->memory = 512ull << 20;
	s->cpus = 2;
	s->net_mode = NET_USER;
	s->forward = strv_push(s->forward, xstrdup("8080:80"));
	s->forward = strv_push(s->forward, xstrdup("5353:53/udp"));
	return s;
}

static struct qemu_config micro_config(const struct vm_spec *s, const struct accel_info *accel)
{
	return (struct qemu_config){
		.name = "web",
		.spec = s,
		.binary = "/usr/bin/qemu-system-x86_64",
		.run_dir = "/run/user/1000/hutch/web",
		.vm_dir = "/home/user/.local/share/hutch/vms/web",
		.kernel = "/usr/lib/hutch/micro/vmlinuz",
		.initrd = "/usr/lib/hutch/micro/initrd.img",
		.accel = accel,
	};
}

/* Prints the first line that differs, which is all a reviewer needs to find the change. */
static void report_diff(const char *name, const char *want, const char *got)
{
	int line = 1;
	const char *w = want, *g = got;
	while (*w && *w == *g) {
		if (*w == '\n')
			line++;
		w++;
		g++;
	}
	const char *wl = w, *gl = g;
	while (wl > want && wl[-1] != '\n')
		wl--;
	while (gl > got && gl[-1] != '\n')
		gl--;
	fail_msg("%s differs at line %d:\n  golden: %.*s\n  actual: %.*s\n(HUTCH_UPDATE_GOLDEN=1 regenerates)",
		 name, line, (int)strcspn(wl, "\n"), wl, (int)strcspn(gl, "\n"), gl);
}

static void check_golden(const char *name, const char *got)
{
	_cleanup_free_ char *path = xasprintf(GOLDEN_DIR "%s", name);
	struct hutch_error err = {0};
	const char *update = getenv("HUTCH_UPDATE_GOLDEN");
	if (update && *update && strcmp(update, "0")) {
		if (write_file_atomic(path, got, strlen(got), 0644, &err) < 0)
			fail_msg("%s", err.msg);
		print_message("updated %s\n", path);
		return;
	}
	_cleanup_free_ char *want = NULL;
	if (read_file(path, 1 << 20, &want, NULL, &err) < 0)
		fail_msg("%s (HUTCH_UPDATE_GOLDEN=1 creates it)", err.msg);
	if (strcmp(want, got))
		report_diff(name, want, got);
}

static char *render(const struct qemu_config *c)
{
	char **argv = NULL;
	struct hutch_error err = {0};
	if (qemu_build_argv(c, &argv, &err) < 0)
		fail_msg("qemu_build_argv: %s", err.msg);
	assert_string_equal(argv[0], c->binary);
	char *r = qemu_render_argv(argv);
	strv_free(argv);
	return r;
}

/* ---- goldens ---- */

static void test_golden_micro_tcg(void **state UNUSED)
{
	_cleanup_(spec_freep) struct vm_spec *s = micro_spec();
	struct qemu_config c = micro_config(s, &accel_tcg);
	_cleanup_free_ char *r = render(&c);
	check_golden("micro-tcg.txt", r);
}

static void test_golden_micro_kvm(void **state UNUSED)
{
	_cleanup_(spec_freep) struct vm_spec *s = micro_spec();
	struct qemu_config c = micro_config(s, &accel_kvm);
	_cleanup_free_ char *r = render(&c);
	check_golden("micro-kvm.txt", r);
}

static void test_golden_micro_net_none(void **state UNUSED)
{
	_cleanup_(spec_freep) struct vm_spec *s = micro_spec();
	s->net_mode = NET_NONE;
	s->cmdline = xstrdup("systemd.unit=rescue.target");
	struct qemu_config c = micro_config(s, &accel_tcg);
	_cleanup_free_ char *r = render(&c);
	check_golden("micro-net-none.txt", r);
	assert_null(strstr(r, "-netdev"));
	assert_null(strstr(r, "virtio-net"));
}

static void test_golden_image(void **state UNUSED)
{
	_cleanup_(spec_freep) struct vm_spec *s = spec_new("deb");
	s->source = SOURCE_IMAGE;
	s->image = xstrdup("https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2");
	s->memory = 2ull << 30;
	s->cpus = 4;
	s->firmware = FIRMWARE_UEFI_SECURE;
	s->net_mode = NET_USER;
	s->forward = strv_push(s->forward, xstrdup("2222:22"));
	struct qemu_config c = {
		.name = "deb",
		.spec = s,
		.binary = "/usr/bin/qemu-system-x86_64",
		.run_dir = "/run/user/1000/hutch/deb",
		.vm_dir = "/home/user/.local/share/hutch/vms/deb",
		.disk = "/home/user/.local/share/hutch/vms/deb/disk.qcow2",
		.seed = "/home/user/.local/share/hutch/vms/deb/seed.iso",
		.accel = &accel_kvm,
	};
	_cleanup_free_ char *r = render(&c);
	check_golden("image-kvm.txt", r);
	assert_null(strstr(r, "-kernel"));
	assert_non_null(strstr(r, "virtio-net-pci,netdev=net0"));
}

/* ---- pieces ---- */

static void test_micro_cmdline(void **state UNUSED)
{
	_cleanup_(spec_freep) struct vm_spec *s = micro_spec();
	struct qemu_config c = micro_config(s, &accel_tcg);
	_cleanup_free_ char *tcg = qemu_micro_cmdline(&c);
	assert_non_null(strstr(tcg, " tsc_early_khz=2000000 lpj=8000000"));
	assert_non_null(strstr(tcg, "hutch.hostname=web"));

	c.accel = &accel_kvm;
	_cleanup_free_ char *kvm = qemu_micro_cmdline(&c);
	assert_null(strstr(kvm, "tsc_early_khz"));
	assert_null(strstr(kvm, "lpj="));
	assert_non_null(strstr(kvm, "hutch.hostname=web"));

	/* TCG without a known TSC rate: nothing to tell the guest. */
	struct accel_info unknown = accel_tcg;
	unknown.tsc_khz = 0;
	c.accel = &unknown;
	_cleanup_free_ char *none = qemu_micro_cmdline(&c);
	assert_null(strstr(none, "tsc_early_khz"));

	/* lpj follows the rate (HZ=250). */
	unknown.tsc_khz = 2999000;
	_cleanup_free_ char *odd = qemu_micro_cmdline(&c);
	assert_non_null(strstr(odd, " tsc_early_khz=2999000 lpj=11996000"));

	/* The spec's extra command line comes last. */
	s->cmdline = xstrdup("init=/bin/sh");
	c.accel = &accel_tcg;
	_cleanup_free_ char *extra = qemu_micro_cmdline(&c);
	size_t n = strlen(extra);
	assert_true(n > 13);
	assert_string_equal(extra + n - 13, " init=/bin/sh");

	/* The same string goes into -append. */
	char **argv = NULL;
	assert_int_equal(qemu_build_argv(&c, &argv, NULL), 0);
	size_t i = 0;
	while (argv[i] && strcmp(argv[i], "-append"))
		i++;
	assert_non_null(argv[i]);
	assert_string_equal(argv[i + 1], extra);
	strv_free(argv);
}

static void expect_forward_error(const char *fwd)
{
	_cleanup_(spec_freep) struct vm_spec *s = micro_spec();
	s->forward = strv_push(s->forward, xstrdup(fwd));
	struct qemu_config c = micro_config(s, &accel_tcg);
	char **argv = NULL;
	struct hutch_error err = {0};
	if (qemu_build_argv(&c, &argv, &err) != -EINVAL)
		fail_msg("forward '%s' was accepted", fwd);
	assert_null(argv);
	_cleanup_free_ char *want = xasprintf("invalid port forward '%s'", fwd);
	assert_string_equal(err.msg, want);
	hutch_error_clear(&err);
}

static void test_invalid_forward(void **state UNUSED)
{
	static const char *const bad[] = {"", "80", ":80", "80:", "0:80", "80:0", "65536:80", "80:65536",
					  "a:b", "http:80", "-1:80", "80:-1"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		expect_forward_error(bad[i]);

	/* The edges of the port range are fine. */
	_cleanup_(spec_freep) struct vm_spec *s = micro_spec();
	strv_free(s->forward);
	s->forward = NULL;
	s->forward = strv_push(s->forward, xstrdup("1:65535/tcp"));
	s->forward = strv_push(s->forward, xstrdup("65535:1/udp"));
	struct qemu_config c = micro_config(s, &accel_tcg);
	char **argv = NULL;
	assert_int_equal(qemu_build_argv(&c, &argv, NULL), 0);
	size_t i = 0;
	while (argv[i] && strcmp(argv[i], "-netdev"))
		i++;
	assert_non_null(argv[i]);
	assert_string_equal(argv[i + 1], "user,id=net0,hostfwd=tcp:127.0.0.1:1-:65535,hostfwd=udp:127.0.0.1:65535-:1");
	strv_free(argv);

	/* No forwards: a bare user netdev. */
	strv_free(s->forward);
	s->forward = NULL;
	assert_int_equal(qemu_build_argv(&c, &argv, NULL), 0);
	i = 0;
	while (argv[i] && strcmp(argv[i], "-netdev"))
		i++;
	assert_string_equal(argv[i + 1], "user,id=net0");
	strv_free(argv);
}

static void test_missing_inputs(void **state UNUSED)
{
	_cleanup_(spec_freep) struct vm_spec *s = micro_spec();
	struct qemu_config c = micro_config(s, &accel_tcg);
	char **argv = NULL;
	struct hutch_error err = {0};
	c.initrd = NULL;
	assert_int_equal(qemu_build_argv(&c, &argv, &err), -EINVAL);
	assert_string_equal(err.msg, "micro VM 'web' has no kernel or initramfs");
	assert_null(argv);
	hutch_error_clear(&err);

	s->source = SOURCE_IMAGE;
	assert_int_equal(qemu_build_argv(&c, &argv, &err), -EINVAL);
	assert_string_equal(err.msg, "VM 'web' has no disk");
	hutch_error_clear(&err);
}

static void test_defaults(void **state UNUSED)
{
	/* cpus 0 renders as 1; memory is whole MiB. */
	_cleanup_(spec_freep) struct vm_spec *s = micro_spec();
	s->cpus = 0;
	s->memory = 3ull << 30;
	struct qemu_config c = micro_config(s, &accel_tcg);
	char **argv = NULL;
	assert_int_equal(qemu_build_argv(&c, &argv, NULL), 0);
	size_t i = 0;
	while (argv[i] && strcmp(argv[i], "-smp"))
		i++;
	assert_string_equal(argv[i + 1], "1");
	i = 0;
	while (argv[i] && strcmp(argv[i], "-m"))
		i++;
	assert_string_equal(argv[i + 1], "3072M");
	strv_free(argv);
}

static void test_render_quoting(void **state UNUSED)
{
	char *argv[] = {"qemu", "a b", "it's", "", "x=1,y=/p:q@h%+_-.", "$HOME", "*", "tab\there", NULL};
	_cleanup_free_ char *r = qemu_render_argv(argv);
	assert_string_equal(r, "qemu \\\n"
			       "  'a b' \\\n"
			       "  'it'\\''s' \\\n"
			       "  '' \\\n"
			       "  x=1,y=/p:q@h%+_-. \\\n"
			       "  '$HOME' \\\n"
			       "  '*' \\\n"
			       "  'tab\there'\n");
	_cleanup_free_ char *empty = qemu_render_argv(NULL);
	assert_string_equal(empty, "\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden_micro_tcg),
		cmocka_unit_test(test_golden_micro_kvm),
		cmocka_unit_test(test_golden_micro_net_none),
		cmocka_unit_test(test_golden_image),
		cmocka_unit_test(test_micro_cmdline),
		cmocka_unit_test(test_invalid_forward),
		cmocka_unit_test(test_missing_inputs),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_render_quoting),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
