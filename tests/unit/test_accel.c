/* accel: the decision from injected devices and probe verdicts, the cached verdict and its host
 * key, and config.yml's accel default. The probe itself boots QEMU: tests/integration/12-accel.sh. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>
#include <sys/stat.h>

#include "accel.h"
#include "config.h"

#define UNUSED __attribute__((unused))

static const struct kvm_device dev_ok = {.state = KVM_DEV_OK};
static const struct kvm_device dev_missing = {.state = KVM_DEV_MISSING, .error = ENOENT};
static const struct kvm_device dev_denied = {.state = KVM_DEV_DENIED, .error = EACCES};

static struct accel_verdict verdict(bool works, enum probe_outcome out, const char *cpu, const char *detail)
{
	struct accel_verdict v;
	memset(&v, 0, sizeof(v));
	v.works = works;
	v.outcome = out;
	snprintf(v.cpu, sizeof(v.cpu), "%s", cpu);
	snprintf(v.detail, sizeof(v.detail), "%s", detail);
	snprintf(v.host.boot_id, sizeof(v.host.boot_id), "0b7e1f0c-6a3e-4a31-9a3b-2f4c5d6e7f80");
	snprintf(v.host.kernel, sizeof(v.host.kernel), "6.18.44");
	snprintf(v.host.qemu, sizeof(v.host.qemu), "/usr/bin/qemu-system-x86_64");
	snprintf(v.host.qemu_id, sizeof(v.host.qemu_id), "fe01:1234:19000000:1700000000.000000000");
	return v;
}

static const char msr[] = "qemu -cpu host exited at start (signal 6): error: failed to set MSR 0x10a to 0x69";

static void test_mode_names(void **state UNUSED)
{
	enum accel_mode m = ACCEL_UNSET;
	assert_int_equal(accel_mode_parse("kvm", &m), 0);
	assert_int_equal(m, ACCEL_KVM);
	assert_int_equal(accel_mode_parse("tcg", &m), 0);
	assert_int_equal(m, ACCEL_TCG);
	assert_int_equal(accel_mode_parse("auto", &m), 0);
	assert_int_equal(m, ACCEL_AUTO);
	assert_int_equal(accel_mode_parse("KVM", &m), -EINVAL);
	assert_int_equal(accel_mode_parse("", &m), -EINVAL);
	assert_int_equal(accel_mode_parse(NULL, &m), -EINVAL);
	assert_string_equal(accel_mode_name(ACCEL_UNSET), "auto");
	assert_string_equal(accel_mode_name(ACCEL_KVM), "kvm");
}

static void test_tcg_asked(void **state UNUSED)
{
	struct accel_info a;
	struct accel_verdict v = verdict(true, PROBE_OK, "host", "");
	/* tcg wins over a working KVM, and is no reason for a warning */
	assert_int_equal(accel_decide(ACCEL_TCG, &dev_ok, &v, &a, NULL), 0);
	assert_false(a.kvm);
	assert_false(a.warn);
	assert_string_equal(a.cpu, "max");
}

static void test_no_device(void **state UNUSED)
{
	struct accel_info a;
	struct hutch_error err = {0};
	assert_int_equal(accel_decide(ACCEL_AUTO, &dev_missing, NULL, &a, &err), 0);
	assert_false(a.kvm);
	assert_true(a.warn);
	assert_non_null(strstr(a.why, "/dev/kvm does not exist"));
	assert_int_equal(accel_decide(ACCEL_KVM, &dev_missing, NULL, &a, &err), -ENODEV);
	assert_non_null(strstr(err.msg, "accel: kvm: /dev/kvm does not exist"));
	hutch_error_clear(&err);
}

static void test_denied_names_the_group(void **state UNUSED)
{
	struct accel_info a;
	struct hutch_error err = {0};
	assert_int_equal(accel_decide(ACCEL_UNSET, &dev_denied, NULL, &a, &err), 0);
	assert_false(a.kvm);
	assert_non_null(strstr(a.why, "sudo usermod -aG "));
	assert_int_equal(accel_decide(ACCEL_KVM, &dev_denied, NULL, &a, &err), -EACCES);
	assert_non_null(strstr(err.msg, "Permission denied"));
	assert_non_null(strstr(err.msg, "sudo usermod -aG "));
	hutch_error_clear(&err);
}

static void test_usable_device_needs_a_probe(void **state UNUSED)
{
	struct accel_info a;
	/* an open() that works proves nothing */
	assert_int_equal(accel_decide(ACCEL_AUTO, &dev_ok, NULL, &a, NULL), -EAGAIN);
	assert_int_equal(accel_decide(ACCEL_KVM, &dev_ok, NULL, &a, NULL), -EAGAIN);
}

static void test_probe_worked(void **state UNUSED)
{
	struct accel_info a;
	struct accel_verdict v = verdict(true, PROBE_OK, "host,-arch-capabilities", "");
	assert_int_equal(accel_decide(ACCEL_AUTO, &dev_ok, &v, &a, NULL), 0);
	assert_true(a.kvm);
	assert_true(a.proven);
	assert_false(a.warn);
	/* the model the probe booted, not a guess */
	assert_string_equal(a.cpu, "host,-arch-capabilities");
	assert_int_equal(accel_decide(ACCEL_KVM, &dev_ok, &v, &a, NULL), 0);
	assert_true(a.kvm);
}

static void test_probe_failed(void **state UNUSED)
{
	struct accel_info a;
	struct hutch_error err = {0};
	struct accel_verdict v = verdict(false, PROBE_QEMU_EXIT, "host", msr);
	assert_int_equal(accel_decide(ACCEL_AUTO, &dev_ok, &v, &a, &err), 0);
	assert_false(a.kvm);
	assert_true(a.warn);
	assert_string_equal(a.cpu, "max");
	assert_non_null(strstr(a.why, "KVM failed its probe"));
	assert_non_null(strstr(a.why, "failed to set MSR 0x10a"));
	/* kvm never falls back, and says why with QEMU's own words */
	assert_int_equal(accel_decide(ACCEL_KVM, &dev_ok, &v, &a, &err), -EIO);
	assert_non_null(strstr(err.msg, "failed to set MSR 0x10a"));
	assert_non_null(strstr(err.msg, "hutch doctor --probe"));
	hutch_error_clear(&err);
}

static void test_probe_timed_out(void **state UNUSED)
{
	struct accel_info a;
	struct hutch_error err = {0};
	struct accel_verdict v = verdict(false, PROBE_TIMEOUT, "host,-arch-capabilities",
					 "with -cpu host,-arch-capabilities the guest made no progress to its agent "
					 "within 10 s");
	assert_int_equal(accel_decide(ACCEL_KVM, &dev_ok, &v, &a, &err), -ETIMEDOUT);
	assert_non_null(strstr(err.msg, "no progress to its agent within 10 s"));
	hutch_error_clear(&err);
	assert_int_equal(accel_decide(ACCEL_AUTO, &dev_ok, &v, &a, &err), 0);
	assert_false(a.kvm);
}

static char tmpdir[] = "/tmp/hutch-test-accel.XXXXXX";

static int setup_dir(void **state UNUSED) { return mkdtemp(tmpdir) ? 0 : -1; }

static int teardown_dir(void **state UNUSED)
{
	rm_rf(tmpdir);
	unsetenv("HUTCH_PROC_ROOT");
	return 0;
}

static void test_verdict_roundtrip(void **state UNUSED)
{
	_cleanup_free_ char *path = accel_verdict_path(tmpdir);
	struct accel_verdict v = verdict(false, PROBE_QEMU_EXIT, "host", msr), back;
	v.probe_ms = 10046;
	v.when = 1764566400;
	snprintf(v.qemu_version, sizeof(v.qemu_version), "7.2.19");
	assert_int_equal(accel_verdict_save(path, &v, NULL), 0);
	assert_int_equal(accel_verdict_load(path, &v.host, &back), 0);
	assert_false(back.works);
	assert_int_equal(back.outcome, PROBE_QEMU_EXIT);
	assert_string_equal(back.detail, msr);
	assert_string_equal(back.cpu, "host");
	assert_string_equal(back.qemu_version, "7.2.19");
	assert_int_equal(back.probe_ms, 10046);
	assert_true(accel_host_equal(&back.host, &v.host));

	/* another boot, another kernel or another QEMU binary: stale, probe again */
	struct accel_host other = v.host;
	other.boot_id[0] = '1';
	assert_int_equal(accel_verdict_load(path, &other, &back), -ESTALE);
	other = v.host;
	snprintf(other.qemu_id, sizeof(other.qemu_id), "fe01:1234:19000001:1700000001.000000000");
	assert_int_equal(accel_verdict_load(path, &other, &back), -ESTALE);
	other = v.host;
	snprintf(other.kernel, sizeof(other.kernel), "6.19.0");
	assert_int_equal(accel_verdict_load(path, &other, &back), -ESTALE);
}

static void test_verdict_garbage(void **state UNUSED)
{
	_cleanup_free_ char *path = accel_verdict_path(tmpdir);
	struct accel_verdict back;
	unlink(path);
	assert_int_equal(accel_verdict_load(path, NULL, &back), -ENOENT);
	assert_int_equal(write_file_atomic(path, "{\"works\": tr", 12, 0644, NULL), 0);
	assert_int_equal(accel_verdict_load(path, NULL, &back), -ENOENT);
	/* "works" without the model that worked is not believed */
	const char *bad = "{\"works\": true, \"outcome\": \"ok\", \"cpu\": \"\"}";
	assert_int_equal(write_file_atomic(path, bad, strlen(bad), 0644, NULL), 0);
	assert_int_equal(accel_verdict_load(path, NULL, &back), -ENOENT);
}

/* A fake /proc under tmpdir/NAME (HUTCH_PROC_ROOT) whose boot_id is id; returns the boot_id file. */
static char *fake_boot_id(const char *name, const char *id)
{
	_cleanup_free_ char *dir = xasprintf("%s/%s/proc/sys/kernel/random", tmpdir, name);
	assert_int_equal(mkdir_p(dir, 0755), 0);
	char *f = xasprintf("%s/boot_id", dir);
	assert_int_equal(write_file_atomic(f, id, strlen(id), 0644, NULL), 0);
	_cleanup_free_ char *root = xasprintf("%s/%s", tmpdir, name);
	setenv("HUTCH_PROC_ROOT", root, 1);
	return f;
}

static void test_host_key(void **state UNUSED)
{
	_cleanup_free_ char *f = fake_boot_id("proc", "3f1b2c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d\n");
	struct accel_host h;
	assert_int_equal(accel_host_read("/bin/sh", &h, NULL), 0);
	assert_string_equal(h.boot_id, "3f1b2c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d");
	assert_string_equal(h.qemu, "/bin/sh");
	assert_true(h.qemu_id[0] != 0);
	assert_true(h.kernel[0] != 0);
	struct accel_host h2;
	assert_int_equal(accel_host_read("/bin/sh", &h2, NULL), 0);
	assert_true(accel_host_equal(&h, &h2));
	struct hutch_error err = {0};
	assert_true(accel_host_read("/nonexistent/qemu", &h2, &err) < 0);
	hutch_error_clear(&err);
	unlink(f);
	assert_int_equal(accel_host_read("/bin/sh", &h2, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "boot id"));
	hutch_error_clear(&err);
}

/* The TSC rate is measured once per host boot: a second call reads what the first kept, and a
 * new boot id measures again. */
static void test_tsc_per_boot(void **state UNUSED)
{
	_cleanup_free_ char *f = fake_boot_id("tscproc", "11111111-2222-3333-4444-555555555555\n");
	unsetenv("HUTCH_TSC_KHZ");
	_cleanup_free_ char *cache = xasprintf("%s/tsccache", tmpdir);
	uint64_t k = accel_tsc_khz(cache);
	_cleanup_free_ char *kept = xasprintf("%s/tsc-khz", cache);
	char *text = NULL;
	assert_int_equal(read_file(kept, 256, &text, NULL, NULL), 0);
	_cleanup_free_ char *want = xasprintf("11111111-2222-3333-4444-555555555555 %llu\n", (unsigned long long)k);
	assert_string_equal(text, want);
	free(text);
	/* kept: a value planted in the file is what the next call answers */
	const char *planted = "11111111-2222-3333-4444-555555555555 1234000\n";
	assert_int_equal(write_file_atomic(kept, planted, strlen(planted), 0600, NULL), 0);
	assert_int_equal(accel_tsc_khz(cache), 1234000);
	/* another boot: measured again, and kept for that boot */
	const char *id2 = "99999999-2222-3333-4444-555555555555\n";
	assert_int_equal(write_file_atomic(f, id2, strlen(id2), 0644, NULL), 0);
	uint64_t k2 = accel_tsc_khz(cache);
	assert_true(k2 != 1234000 || k == 1234000);
	assert_int_equal(read_file(kept, 256, &text, NULL, NULL), 0);
	assert_non_null(strstr(text, "99999999-"));
	free(text);
	/* garbage is no rate */
	assert_int_equal(write_file_atomic(kept, "x y\n", 4, 0600, NULL), 0);
	assert_true(accel_tsc_khz(cache) != 0 || k == 0);
	unsetenv("HUTCH_PROC_ROOT");
}

static void test_config(void **state UNUSED)
{
	struct hutch_config c;
	struct hutch_error err = {0};
	const char *good = "# defaults\naccel: tcg\nbackend: libvirt\nlibvirt:\n  uri: qemu:///session\n";
	assert_int_equal(config_parse_buffer(good, strlen(good), "config.yml", &c, &err), 0);
	assert_int_equal(c.accel, ACCEL_TCG);
	assert_string_equal(c.backend, "libvirt");
	assert_string_equal(c.libvirt_uri, "qemu:///session");
	config_release(&c);

	/* all comments: the commented default `hutch setup` writes */
	const char *empty = "# accel: auto\n# backend: qemu\n";
	assert_int_equal(config_parse_buffer(empty, strlen(empty), "config.yml", &c, &err), 0);
	assert_int_equal(c.accel, ACCEL_UNSET);
	config_release(&c);

	const char *bad = "backend: qemu\naccel: fast\n";
	assert_int_equal(config_parse_buffer(bad, strlen(bad), "config.yml", &c, &err), -EINVAL);
	assert_string_equal(err.msg, "config.yml:2: accel: expected auto, kvm or tcg, got 'fast'");
	hutch_error_clear(&err);

	const char *unknown = "accel: kvm\nacel: tcg\n";
	assert_int_equal(config_parse_buffer(unknown, strlen(unknown), "config.yml", &c, &err), -EINVAL);
	assert_string_equal(err.msg, "config.yml:2: acel: unknown key");
	hutch_error_clear(&err);

	const char *nested = "libvirt:\n  url: x\n";
	assert_int_equal(config_parse_buffer(nested, strlen(nested), "config.yml", &c, &err), -EINVAL);
	assert_string_equal(err.msg, "config.yml:2: libvirt.url: unknown key");
	hutch_error_clear(&err);
}

static void test_accel_precedence(void **state UNUSED)
{
	struct store st = {0};
	st.config_dir = xasprintf("%s/config", tmpdir);
	assert_int_equal(mkdir_p(st.config_dir, 0755), 0);
	_cleanup_free_ char *cfg = xasprintf("%s/config.yml", st.config_dir);
	enum accel_mode m;
	struct hutch_error err = {0};
	unsetenv("HUTCH_ACCEL");
	/* nothing anywhere: auto */
	assert_int_equal(config_accel_mode(&st, ACCEL_UNSET, &m, &err), 0);
	assert_int_equal(m, ACCEL_AUTO);
	assert_int_equal(write_file_atomic(cfg, "accel: kvm\n", 11, 0644, NULL), 0);
	assert_int_equal(config_accel_mode(&st, ACCEL_UNSET, &m, &err), 0);
	assert_int_equal(m, ACCEL_KVM);
	setenv("HUTCH_ACCEL", "tcg", 1);
	assert_int_equal(config_accel_mode(&st, ACCEL_UNSET, &m, &err), 0);
	assert_int_equal(m, ACCEL_TCG);
	/* the spec (or --accel at create) wins */
	assert_int_equal(config_accel_mode(&st, ACCEL_AUTO, &m, &err), 0);
	assert_int_equal(m, ACCEL_AUTO);
	setenv("HUTCH_ACCEL", "turbo", 1);
	assert_true(config_accel_mode(&st, ACCEL_UNSET, &m, &err) < 0);
	assert_non_null(strstr(err.msg, "HUTCH_ACCEL='turbo'"));
	hutch_error_clear(&err);
	unsetenv("HUTCH_ACCEL");
	/* a broken config.yml is an error, not a silent default */
	assert_int_equal(write_file_atomic(cfg, "accel: [kvm]\n", 13, 0644, NULL), 0);
	assert_true(config_accel_mode(&st, ACCEL_UNSET, &m, &err) < 0);
	assert_non_null(strstr(err.msg, "config.yml:1: accel: expected auto, kvm or tcg, got a list"));
	hutch_error_clear(&err);
	free(st.config_dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mode_names),
		cmocka_unit_test(test_tcg_asked),
		cmocka_unit_test(test_no_device),
		cmocka_unit_test(test_denied_names_the_group),
		cmocka_unit_test(test_usable_device_needs_a_probe),
		cmocka_unit_test(test_probe_worked),
		cmocka_unit_test(test_probe_failed),
		cmocka_unit_test(test_probe_timed_out),
		cmocka_unit_test(test_verdict_roundtrip),
		cmocka_unit_test(test_verdict_garbage),
		cmocka_unit_test(test_host_key),
		cmocka_unit_test(test_tsc_per_boot),
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_accel_precedence),
	};
	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
