/* doctor: the host-virtualization check against fake /sys and /proc trees (HUTCH_SYSFS_ROOT,
 * HUTCH_PROC_ROOT), and the report's shape: every check named, with a status, and a fix whenever
 * it is not ok. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>
#include <sys/stat.h>

#include "doctor.h"
#include "store.h"

#define UNUSED __attribute__((unused))

static char tmpdir[] = "/tmp/hutch-test-doctor.XXXXXX";

static int setup_dir(void **state UNUSED) { return mkdtemp(tmpdir) ? 0 : -1; }

static int teardown_dir(void **state UNUSED)
{
	rm_rf(tmpdir);
	unsetenv("HUTCH_SYSFS_ROOT");
	unsetenv("HUTCH_PROC_ROOT");
	unsetenv("HUTCH_HOME");
	return 0;
}

static void put(const char *rel, const char *text)
{
	_cleanup_free_ char *p = xasprintf("%s/%s", tmpdir, rel);
	_cleanup_free_ char *d = xstrdup(p);
	*strrchr(d, '/') = 0;
	assert_int_equal(mkdir_p(d, 0755), 0);
	assert_int_equal(write_file_atomic(p, text, strlen(text), 0644, NULL), 0);
}

static void test_host_virt(void **state UNUSED)
{
	_cleanup_free_ char *sys = xasprintf("%s/sys", tmpdir), *proc = xasprintf("%s/proc", tmpdir);
	setenv("HUTCH_SYSFS_ROOT", sys, 1);
	setenv("HUTCH_PROC_ROOT", proc, 1);
	put("proc/proc/cpuinfo", "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr vmx\n");
	char *v = doctor_host_virt();
	assert_null(v); /* bare metal */
	put("proc/proc/cpuinfo", "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr hypervisor lahf_lm\n");
	v = doctor_host_virt();
	assert_non_null(v);
	assert_non_null(strstr(v, "nested"));
	free(v);
	_cleanup_free_ char *pvm = xasprintf("%s/sys/sys/module/kvm_pvm", tmpdir);
	assert_int_equal(mkdir_p(pvm, 0755), 0);
	v = doctor_host_virt();
	assert_non_null(v);
	assert_non_null(strstr(v, "paravirtual KVM (the kvm_pvm module is loaded)"));
	free(v);
}

static void test_report_shape(void **state UNUSED)
{
	_cleanup_free_ char *home = xasprintf("%s/home", tmpdir);
	setenv("HUTCH_HOME", home, 1);
	struct store st;
	assert_int_equal(store_open(&st, NULL), 0);
	struct doctor_opts o = {.probe = false};
	struct doctor_report r;
	doctor_run(&st, &o, &r);
	assert_true(r.n >= 15);
	static const char *const want[] = {"qemu", "kvm", "virtualization", "agent", "runtime-dir", "userns", "linger"};
	for (size_t w = 0; w < sizeof(want) / sizeof(want[0]); w++) {
		bool found = false;
		for (size_t i = 0; i < r.n; i++)
			found |= !strcmp(r.checks[i].name, want[w]);
		assert_true(found);
	}
	for (size_t i = 0; i < r.n; i++) {
		const struct check *k = &r.checks[i];
		assert_true(k->status == CHECK_OK || k->status == CHECK_WARN || k->status == CHECK_FAIL);
		assert_true(k->detail && *k->detail);
		if (k->status != CHECK_OK && strcmp(k->name, "kvm") != 0)
			assert_non_null(k->fix);
	}
	size_t failed = 0;
	for (size_t i = 0; i < r.n; i++)
		failed += r.checks[i].status == CHECK_FAIL;
	assert_int_equal(doctor_failed(&r), failed);
	doctor_report_release(&r);
	store_release(&st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_host_virt),
		cmocka_unit_test(test_report_shape),
	};
	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
