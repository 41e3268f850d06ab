#include "cmd.h"
#include "vmops.h"

#include <string.h>

struct stop_cli {
	struct stop_opts o;
	const char *instance;
};

static const struct opt stop_opts[] = {
	OPT_INSTANCE(struct stop_cli),
	OPT_BOOL('f', "force", struct stop_cli, o.force, "skip the agent and ACPI: quit QEMU"),
	OPT_DURATION(0, "timeout", struct stop_cli, o.timeout_ms, "SEC",
		     "wait SEC for a clean shutdown (default: the spec's stop_timeout, or 30)"),
	OPT_JSON(),
	OPT_END(),
};

static int cmd_stop(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	struct stop_cli *s = opts;
	_cleanup_free_ char *name = NULL;
	if (cmd_vm_name(c, argv[0], s->instance, &name))
		return EXIT_ERR;
	struct stop_result res;
	if (vm_stop(&c->store, name, &s->o, &res, &c->err) < 0)
		return EXIT_ERR;
	bool was = strcmp(res.method, "not-running") != 0;
	if (c->json) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "name", json_object_new_string(name));
		json_object_object_add(j, "was_running", json_object_new_boolean(was));
		json_object_object_add(j, "method", json_object_new_string(res.method));
		json_object_object_add(j, "ms", json_object_new_int64((int64_t)res.ms));
		cmd_print_json(j);
	} else if (!c->quiet) {
		if (was)
			printf("stopped %s (%s, %.2f s)\n", name, res.method, (double)res.ms / 1000.0);
		else
			printf("%s is not running\n", name);
	}
	return EXIT_OK;
}

VERB_DEFINE(stop, .name = "stop", .fn = cmd_stop, .opts = stop_opts, .opts_size = sizeof(struct stop_cli),
	    .min_args = 1, .max_args = 1, .args = "NAME", .complete = "vm",
	    .summary = "shut a VM down (agent, ACPI, quit, kill)");
