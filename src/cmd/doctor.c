#include "accel.h"
#include "backend.h"
#include "cmd.h"
#include "qemu.h"
#include "template.h"

#include <string.h>

static void line(bool ok, const char *what, const char *detail)
{
	printf("%s %-10s %s\n", ok ? "ok  " : "FAIL", what, detail);
}

static int cmd_doctor(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	int bad = 0;
	struct hutch_error err = {0};
	_cleanup_free_ char *qemu = NULL;
	bool ok = qemu_find_binary(&qemu, &err) == 0;
	line(ok, "qemu", ok ? qemu : err.msg);
	bad += !ok;
	hutch_error_clear(&err);
	/* Only the device here: whether KVM really runs a guest is the probe's verdict (accel.h). */
	static const char *const kvm_says[] = {
		[KVM_DEV_OK] = "/dev/kvm opens (KVM once a probe has booted on it)",
		[KVM_DEV_MISSING] = "TCG, slow: no /dev/kvm",
		[KVM_DEV_DENIED] = "TCG, slow: /dev/kvm is not accessible to this user",
		[KVM_DEV_ERROR] = "TCG, slow: cannot open /dev/kvm",
	};
	struct kvm_device kd;
	accel_check_device(&kd);
	line(true, "accel", kvm_says[kd.state]);
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

VERB_DEFINE(doctor, .name = "doctor", .fn = cmd_doctor, .summary = "check this host: QEMU, KVM, kernel, agent");
