/* hutch doctor: this host checked, each check ok, warn or fail with the exact fix. The checks are
 * data; the CLI prints them or their JSON. HUTCH_SYSFS_ROOT and HUTCH_PROC_ROOT (tests only)
 * relocate /sys and /proc for the paravirtual and nested checks. */
#pragma once
#include "accel.h"
#include "store.h"
#include "util.h"

enum check_status { CHECK_OK = 0, CHECK_WARN, CHECK_FAIL };
const char *check_status_name(enum check_status s);

struct check {
	char *name; /* kvm, qemu, machines, ... */
	enum check_status status;
	char *detail; /* what was found */
	char *fix;    /* the exact command or step; NULL when ok */
};

struct doctor_report {
	struct check *checks;
	size_t n;
	struct accel_result accel; /* the decision auto would make, and the verdict when there is one */
	bool have_accel;
	enum accel_mode mode; /* config.yml's (or HUTCH_ACCEL's) default */
};

struct doctor_opts {
	bool probe; /* run the KVM probe now (again) */
};
/* Never fails as a whole: a check that cannot be made is a failed check. */
void doctor_run(struct store *st, const struct doctor_opts *o, struct doctor_report *ret);
size_t doctor_failed(const struct doctor_report *r);
void doctor_report_release(struct doctor_report *r);

/* What kind of virtualization hosts this host: "paravirtual KVM (kvm_pvm)", "nested: ...", or NULL
 * on bare metal. Exposed for tests. */
char *doctor_host_virt(void);
