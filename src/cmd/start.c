#include "backend.h"
#include "cmd.h"
#include "vmops.h"

struct start_cli {
	struct start_opts o;
	const char *instance;
};

static const struct opt start_opts[] = {
	OPT_INSTANCE(struct start_cli),
	OPT_DURATION(0, "timeout", struct start_cli, o.timeout_ms, "SEC", "wait SEC for the agent (default 120)"),
	OPT_JSON(),
	OPT_END(),
};

static const struct start_cli start_defaults = {.o.timeout_ms = 120000};

static int cmd_start(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	struct start_cli *s = opts;
	_cleanup_free_ char *name = NULL;
	if (cmd_vm_name(c, argv[0], s->instance, &name))
		return EXIT_ERR;
	struct start_result res;
	if (vm_start(&c->store, name, &s->o, &res, &c->err) < 0)
		return EXIT_ERR;
	_cleanup_free_ char *warn = start_accel_warning(&res);
	if (warn)
		log_warn("%s", warn);
	if (c->json) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "name", json_object_new_string(name));
		json_object_object_add(j, "boot_ms", json_object_new_int64((int64_t)res.boot_ms));
		json_object_object_add(j, "monitor_spawn_ms", json_object_new_int64((int64_t)res.spawn_ms));
		json_object_object_add(j, "qmp_ms", json_object_new_int64((int64_t)res.qmp_ms));
		json_object_object_add(j, "agent_hello_ms", json_object_new_int64((int64_t)res.hello_ms));
		json_object_object_add(j, "accel", json_object_new_string(res.kvm ? "kvm" : "tcg"));
		json_object_object_add(j, "cpu", json_object_new_string(res.accel_cpu));
		if (!res.kvm)
			json_object_object_add(j, "accel_why", json_object_new_string(res.accel_why));
		if (res.accel_probed)
			json_object_object_add(j, "accel_probe_ms", json_object_new_int64((int64_t)res.accel_probe_ms));
		json_object_object_add(j, "kernel_release", json_object_new_string(res.kernel_release));
		cmd_print_json(j);
	} else if (!c->quiet)
		printf("started %s in %.2f s (%s, guest kernel %s)\n", name, (double)res.boot_ms / 1000.0,
		       res.kvm ? "kvm" : "tcg", res.kernel_release);
	return EXIT_OK;
}

VERB_DEFINE(start, .name = "start", .fn = cmd_start, .opts = start_opts, .opts_size = sizeof(struct start_cli),
	    .defaults = &start_defaults, .min_args = 1, .max_args = 1, .args = "NAME", .complete = "vm",
	    .summary = "boot a VM; returns when its agent answers");
