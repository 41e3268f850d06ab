#include "backend.h"
#include "cmd.h"
#include "qemu.h"
#include "template.h"

#include <string.h>

static void line(bool ok, const char *what, const char *detail)
{
	printf("%s %-10s %s\n", ok ? "ok  " : "FAIL", what, detail);
}

VERB(doctor)
{
	if (cmd_check_args(c, argc, 1, 0, 0))
		return EXIT_USAGE;
	int bad = 0;
	struct hutch_error err = {0};
	_cleanup_free_ char *qemu = NULL;
	bool ok = qemu_find_binary(&qemu, &err) == 0;
	line(ok, "qemu", ok ? qemu : err.msg);
	bad += !ok;
	hutch_error_clear(&err);
	struct accel_info a;
	qemu_detect_accel(&a);
	char detail[256];
	if (a.kvm)
		snprintf(detail, sizeof(detail), "KVM (/dev/kvm is usable)");
	else
		snprintf(detail, sizeof(detail), "TCG, slow: %s; guest TSC %llu kHz", a.why,
			 (unsigned long long)a.tsc_khz);
	line(true, "accel", detail);
	_cleanup_free_ char *k = NULL, *rel = NULL;
	ok = template_find_kernel("/boot", &k, &rel, &err) == 0;
	line(ok, "kernel", ok ? k : err.msg);
	bad += !ok;
	hutch_error_clear(&err);
	_cleanup_free_ char *agent = NULL;
	ok = agent_binary_path(&agent, &err) == 0;
	line(ok, "agent", ok ? agent : err.msg);
	bad += !ok;
	hutch_error_clear(&err);
	ok = access("/bin/busybox", X_OK) == 0;
	line(ok, "busybox", ok ? "/bin/busybox" : "missing: apt-get install busybox-static");
	bad += !ok;
	printf("store      %s\n", c->store.data_dir);
	printf("runtime    %s\n", c->store.runtime_dir);
	return bad ? EXIT_ERR : EXIT_OK;
}
