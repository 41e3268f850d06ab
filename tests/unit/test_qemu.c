/* qemu: argv rendering against golden files, the micro kernel command line, forward checks.
 * Regenerate the goldens with HUTCH_UPDATE_GOLDEN=1 and review the diff. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "qemu.h"
#include "spec.h"

#define UNUSED __attribute__((unused))
#define GOLDEN_DIR SRCDIR "/tests/golden/argv/"
#include "golden.h"

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

static struct vm_spec *image_spec(void)
{
	struct vm_spec *s = spec_new("deb");
	s->source = SOURCE_IMAGE;
	s->image = xstrdup("https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2");
	s->memory = 2ull << 30;
	s->cpus = 4;
	s->net_mode = NET_USER;
	s->forward = strv_push(s->forward, xstrdup("2222:22"));
	return s;
}

static struct qemu_config image_config(const struct vm_spec *s, const struct accel_info *accel)
{
	return (struct qemu_config){
		.name = "deb",
		.spec = s,
		.binary = "/usr/bin/qemu-system-x86_64",
		.run_dir = "/run/user/1000/hutch/deb",
		.vm_dir = "/home/user/.local/share/hutch/vms/deb",
		.disk = "/home/user/.local/share/hutch/vms/deb/disk.qcow2",
		.accel = accel,
	};
}

static void test_golden_image_bios(void **state UNUSED)
{
	_cleanup_(spec_freep) struct vm_spec *s = image_spec();
	struct qemu_config c = image_config(s, &accel_tcg);
	_cleanup_free_ char *r = render(&c);
	check_golden("image-bios-tcg.txt", r);
	assert_null(strstr(r, "-kernel"));
	assert_null(strstr(r, "pflash"));
	assert_null(strstr(r, "ide-cd"));
	assert_null(strstr(r, "tsc_early_khz")); /* only micro guests are told the TSC rate */
}

static void test_golden_image_uefi_secure(void **state UNUSED)
{
	_cleanup_(spec_freep) struct vm_spec *s = image_spec();
	s->firmware = FIRMWARE_UEFI_SECURE;
	s->tpm = true;
	struct qemu_config c = image_config(s, &accel_kvm);
	c.seed = "/home/user/.local/share/hutch/vms/deb/seed.iso";
	c.fw_code = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd";
	c.nvram = "/home/user/.local/share/hutch/vms/deb/OVMF_VARS.fd";
	c.tpm_sock = "/run/user/1000/hutch/deb/swtpm.sock";
	c.smbios_cred = "io.systemd.credential:hutch.hostname=deb";
	_cleanup_free_ char *r = render(&c);
	check_golden("image-uefi-secure-kvm.txt", r);
	assert_non_null(strstr(r, "virtio-net-pci,netdev=net0"));
}

static void test_uefi_needs_firmware(void **state UNUSED)
{
	static const enum firmware fws[] = {FIRMWARE_UEFI, FIRMWARE_UEFI_SECURE};
	for (size_t i = 0; i < ARRAY_SIZE(fws); i++) {
		_cleanup_(spec_freep) struct vm_spec *s = image_spec();
		s->firmware = fws[i];
		struct qemu_config c = image_config(s, &accel_kvm);
		c.fw_code = "/usr/share/OVMF/OVMF_CODE_4M.fd";
		char **argv = NULL;
		struct hutch_error err = {0};
		assert_int_equal(qemu_build_argv(&c, &argv, &err), -EINVAL);
		assert_string_equal(err.msg, "UEFI VM 'deb' has no firmware or NVRAM");
		assert_null(argv);
		hutch_error_clear(&err);
	}
}

static void test_firmware_paths(void **state UNUSED)
{
	const char *old = getenv("HUTCH_OVMF_DIR");
	_cleanup_free_ char *saved = old ? xstrdup(old) : NULL;
	const char *t = getenv("TMPDIR");
	_cleanup_free_ char *dir = xasprintf("%s/hutch-test-qemu.XXXXXX", t && *t ? t : "/tmp");
	assert_non_null(mkdtemp(dir));
	setenv("HUTCH_OVMF_DIR", dir, 1);

	char *code = (char *)"unset", *vars = (char *)"unset";
	struct hutch_error err = {0};
	assert_int_equal(qemu_firmware_paths(FIRMWARE_BIOS, &code, &vars, &err), 0);
	assert_null(code);
	assert_null(vars);
	assert_int_equal(qemu_firmware_paths(FIRMWARE_DEFAULT, &code, &vars, &err), 0);
	assert_null(code);

	/* Missing files: -ENOENT naming the file and the package. */
	assert_int_equal(qemu_firmware_paths(FIRMWARE_UEFI, &code, &vars, &err), -ENOENT);
	_cleanup_free_ char *want = xasprintf("UEFI firmware not found ('%s/OVMF_CODE_4M.fd'): install Debian's "
					      "ovmf package",
					      dir);
	assert_string_equal(err.msg, want);
	hutch_error_clear(&err);

	static const char *const files[] = {"OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd", "OVMF_CODE_4M.secboot.fd",
					    "OVMF_VARS_4M.ms.fd"};
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		_cleanup_free_ char *p = xasprintf("%s/%s", dir, files[i]);
		assert_int_equal(write_file_atomic(p, "fw", 2, 0644, NULL), 0);
	}
	assert_int_equal(qemu_firmware_paths(FIRMWARE_UEFI, &code, &vars, &err), 0);
	_cleanup_free_ char *wc = xasprintf("%s/OVMF_CODE_4M.fd", dir), *wv = xasprintf("%s/OVMF_VARS_4M.fd", dir);
	assert_string_equal(code, wc);
	assert_string_equal(vars, wv);
	free(code);
	free(vars);
	assert_int_equal(qemu_firmware_paths(FIRMWARE_UEFI_SECURE, &code, &vars, &err), 0);
	assert_non_null(strstr(code, "/OVMF_CODE_4M.secboot.fd"));
	assert_non_null(strstr(vars, "/OVMF_VARS_4M.ms.fd"));
	free(code);
	free(vars);

	if (saved)
		setenv("HUTCH_OVMF_DIR", saved, 1);
	else
		unsetenv("HUTCH_OVMF_DIR");
	rm_rf(dir);
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

/* A bootc image: its own kernel, root on the disk grown by the agent (capped), and the NoCloud seed
 * as a second virtio-mmio disk after the root, only when the VM has one. */
static void test_bootc(void **state UNUSED)
{
	_cleanup_(spec_freep) struct vm_spec *s = micro_spec();
	s->source = SOURCE_OCI;
	s->oci = xstrdup("oci:/x");
	s->root_size = 2ull << 30;
	struct qemu_config c = micro_config(s, &accel_tcg);
	c.own_kernel = true;
	c.disk = "/vms/web/disk.qcow2";
	_cleanup_free_ char *cmd = qemu_micro_cmdline(&c);
	assert_non_null(strstr(cmd, " root=/dev/vda rw hutch.growroot=/dev/vda hutch.rootsize=2147483648"));
	assert_null(strstr(cmd, "hutch.root="));
	_cleanup_free_ char *plain = render(&c);
	assert_null(strstr(plain, "drive=seed"));
	c.seed = "/vms/web/seed.iso";
	_cleanup_free_ char *seeded = render(&c);
	const char *root = strstr(seeded, "virtio-blk-device,drive=disk0");
	const char *seed = strstr(seeded, "virtio-blk-device,drive=seed");
	assert_non_null(root);
	assert_non_null(seed);
	assert_true(root < seed); /* the root stays /dev/vda */
	assert_non_null(strstr(seeded, "file=/vms/web/seed.iso,if=none,id=seed,format=raw,readonly=on"));
	c.own_kernel = false; /* a plain image under micro's shim has no use for it */
	_cleanup_free_ char *shim = render(&c);
	assert_null(strstr(shim, "drive=seed"));
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
	static const char *const bad[] = {"",	   "80",       ":80",	   "80:",	 "80:00",
					  "80:0",  "65536:80", "80:65536", "a:b",	 "http:80",
					  "-1:80", "80:-1",    "80:80x",   "80:80/sctp", "4294967376:80"};
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

static void test_forward_parse(void **state UNUSED)
{
	struct forward f = {.udp = true, .host = 7, .guest = 7};
	assert_int_equal(forward_parse("8080:80", &f), 0);
	assert_false(f.udp);
	assert_int_equal(f.host, 8080);
	assert_int_equal(f.guest, 80);
	_cleanup_free_ char *r1 = forward_rule(&f);
	assert_string_equal(r1, "tcp:127.0.0.1:8080-:80");

	assert_int_equal(forward_parse("5353:53/udp", &f), 0);
	assert_true(f.udp);
	_cleanup_free_ char *r2 = forward_rule(&f);
	assert_string_equal(r2, "udp:127.0.0.1:5353-:53");

	assert_int_equal(forward_parse("1:65535/tcp", &f), 0);
	assert_false(f.udp);
	assert_int_equal(f.host, 1);
	assert_int_equal(f.guest, 65535);

	/* host 0: any free port, picked at start */
	assert_int_equal(forward_parse("0:80", &f), 0);
	assert_int_equal(f.host, 0);
	struct hutch_error err = {0};
	assert_int_equal(forward_pick_free(&f, &err), 0);
	assert_true(f.host > 0 && f.guest == 80);
	assert_int_equal(forward_check_free(&f, &err), 0);

	static const char *const bad[] = {
		"",	    "80",	  ":80",	"80:",	     "00:0",	      "80:0",	   "65536:80",
		"80:65536", "a:b",	  "-1:80",	"+80:80",    " 80:80",	      "80:80 ",	   "80:80x",
		"80:80/",   "80:80/sctp", "80:80/tcpx", "80:80/UDP", "4294967376:80", "080000:80", "1:2:3"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		f = (struct forward){.udp = true, .host = 7, .guest = 7};
		if (forward_parse(bad[i], &f) != -EINVAL)
			fail_msg("forward_parse('%s') accepted it", bad[i]);
		assert_true(f.udp && f.host == 7 && f.guest == 7); /* untouched */
	}
	assert_int_equal(forward_parse(NULL, &f), -EINVAL);
}

static void test_forward_check_free(void **state UNUSED)
{
	/* Take a port on 127.0.0.1 (the kernel picks it), then ask about it. */
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 1), 0);
	socklen_t len = sizeof(sa);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	unsigned port = ntohs(sa.sin_port);

	struct forward f = {.udp = false, .host = port, .guest = 80};
	struct hutch_error err = {0};
	assert_int_equal(forward_check_free(&f, &err), -EADDRINUSE);
	_cleanup_free_ char *want = xasprintf(
		"port %u/tcp is already in use on the host (forward 0:80 for any free port, e.g. in instances)", port);
	assert_string_equal(err.msg, want);
	hutch_error_clear(&err);

	/* The same number over UDP is a different port. */
	f.udp = true;
	assert_int_equal(forward_check_free(&f, &err), 0);
	close(fd);
	f.udp = false;
	assert_int_equal(forward_check_free(&f, &err), 0);
	assert_null(err.msg);
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
		cmocka_unit_test(test_golden_image_bios),
		cmocka_unit_test(test_golden_image_uefi_secure),
		cmocka_unit_test(test_uefi_needs_firmware),
		cmocka_unit_test(test_firmware_paths),
		cmocka_unit_test(test_forward_parse),
		cmocka_unit_test(test_forward_check_free),
		cmocka_unit_test(test_micro_cmdline),
		cmocka_unit_test(test_bootc),
		cmocka_unit_test(test_invalid_forward),
		cmocka_unit_test(test_missing_inputs),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_render_quoting),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
