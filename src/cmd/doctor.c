/* hutch doctor [--probe] [--json]: the host checks (src/lib/doctor.c), printed or as JSON. */
#include "cmd.h"
#include "doctor.h"

#include <string.h>

struct doctor_cli {
	bool probe;
};

static const struct opt doctor_opts[] = {
	OPT_BOOL(0, "probe", struct doctor_cli, probe,
		 "boot a guest under KVM now to prove it (the verdict is cached)"),
	OPT_JSON(),
	OPT_END(),
};

static json_object *verdict_json(const struct doctor_report *r)
{
	const struct accel_result *a = &r->accel;
	json_object *o = json_object_new_object();
	json_object_object_add(o, "mode", json_object_new_string(accel_mode_name(r->mode)));
	json_object_object_add(o, "auto", json_object_new_string(a->info.kvm && a->info.proven ? "kvm" : "tcg"));
	json_object_object_add(o, "probed", json_object_new_boolean(a->probed));
	json_object_object_add(o, "have_verdict", json_object_new_boolean(a->have_verdict));
	if (a->have_verdict) {
		const struct accel_verdict *v = &a->verdict;
		json_object_object_add(o, "works", json_object_new_boolean(v->works));
		json_object_object_add(o, "outcome", json_object_new_string(probe_outcome_name(v->outcome)));
		json_object_object_add(o, "cpu", json_object_new_string(v->cpu));
		json_object_object_add(o, "detail", json_object_new_string(v->detail));
		json_object_object_add(o, "probe_ms", json_object_new_int64((int64_t)v->probe_ms));
		json_object_object_add(o, "qemu_version", json_object_new_string(v->qemu_version));
		json_object_object_add(o, "boot_id", json_object_new_string(v->host.boot_id));
	}
	return o;
}

static void print_text(const struct doctor_report *r)
{
	bool color = cmd_color();
	for (size_t i = 0; i < r->n; i++) {
		const struct check *k = &r->checks[i];
		const char *tag = k->status == CHECK_OK ? "ok  " : (k->status == CHECK_WARN ? "warn" : "FAIL");
		const char *on = !color ? ""
					: (k->status == CHECK_OK ? "\033[32m"
								 : (k->status == CHECK_WARN ? "\033[33m" : "\033[31m"));
		printf("%s%s%s %-16s %s\n", on, tag, color ? "\033[0m" : "", k->name, k->detail);
		if (k->fix)
			printf("     %-16s fix: %s\n", "", k->fix);
	}
}

static int cmd_doctor(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	struct doctor_cli *o = opts;
	struct doctor_opts dopts = {.probe = o->probe};
	struct doctor_report r;
	doctor_run(&c->store, &dopts, &r);
	size_t failed = doctor_failed(&r);
	if (c->json) {
		json_object *j = json_object_new_object(), *arr = json_object_new_array();
		for (size_t i = 0; i < r.n; i++) {
			json_object *k = json_object_new_object();
			json_object_object_add(k, "name", json_object_new_string(r.checks[i].name));
			json_object_object_add(k, "status",
					       json_object_new_string(check_status_name(r.checks[i].status)));
			json_object_object_add(k, "detail", json_object_new_string(r.checks[i].detail));
			json_object_object_add(k, "fix",
					       r.checks[i].fix ? json_object_new_string(r.checks[i].fix) : NULL);
			json_object_array_add(arr, k);
		}
		json_object_object_add(j, "checks", arr);
		if (r.have_accel)
			json_object_object_add(j, "accel", verdict_json(&r));
		cmd_print_json(j);
	} else {
		print_text(&r);
		if (!c->quiet)
			printf("%zu checks, %zu failed\n", r.n, failed);
	}
	doctor_report_release(&r);
	return failed ? EXIT_ERR : EXIT_OK;
}

VERB_DEFINE(doctor, .name = "doctor", .fn = cmd_doctor, .opts = doctor_opts, .opts_size = sizeof(struct doctor_cli),
	    .summary = "check this host: KVM (proven by a probe), QEMU, firmware, helpers, libvirt, dirs");
