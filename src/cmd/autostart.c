/* hutch autostart NAME [on|off]: a systemd user unit starts the VM at boot and stops it at shutdown
 * (src/lib/autostart.h). Without on|off it says which it is. */
#include "autostart.h"
#include "cmd.h"

#include <string.h>

struct autostart_cli {
	const char *instance;
};

static const struct opt autostart_opts[] = {
	OPT_INSTANCE(struct autostart_cli),
	OPT_JSON(),
	OPT_END(),
};

static void print_result(struct cmd_ctx *c, const char *name, bool on, const struct autostart_result *r)
{
	if (c->json) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "name", json_object_new_string(name));
		json_object_object_add(j, "autostart", json_object_new_boolean(on));
		json_object_object_add(j, "unit", json_object_new_string(r->unit_path));
		json_object_object_add(j, "changed", json_object_new_boolean(r->changed));
		json_object_object_add(j, "warnings", cmd_json_strv(r->warnings));
		cmd_print_json(j);
		return;
	}
	for (size_t i = 0; r->warnings && r->warnings[i]; i++)
		fprintf(stderr, "hutch: autostart '%s': warning: %s\n", name, r->warnings[i]);
	if (!c->quiet)
		printf("autostart %s for %s%s: %s\n", on ? "on" : "off", name, r->changed ? "" : " (unchanged)",
		       r->unit_path);
}

static int show(struct cmd_ctx *c, const char *name)
{
	_cleanup_free_ char *dir = NULL;
	if (autostart_unit_dir(&dir, &c->err) < 0)
		return EXIT_ERR;
	struct autostart_result r = {.unit_path = autostart_unit_path(dir, name)};
	bool on = autostart_is_on(name);
	if (c->json)
		print_result(c, name, on, &r);
	else
		printf("%s\n", on ? "on" : "off");
	autostart_result_release(&r);
	return EXIT_OK;
}

static int cmd_autostart(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	struct autostart_cli *a = opts;
	_cleanup_free_ char *name = NULL;
	if (cmd_vm_name(c, argv[0], a->instance, &name))
		return EXIT_ERR;
	if (argc < 2)
		return show(c, name);
	bool on = !strcmp(argv[1], "on");
	if (!on && strcmp(argv[1], "off"))
		return cmd_usage(c, "expected on or off, not '%s'", argv[1]);
	_cleanup_(autostart_result_releasep) struct autostart_result r = {0};
	if (on) {
		if (!store_vm_exists(&c->store, name)) {
			hutch_error_set(&c->err, ENOENT, "no VM named '%s' (see 'hutch list -a', or create it)", name);
			return EXIT_ERR;
		}
		/* the spec picks the backend hook; a broken one does not stop the unit being written */
		_cleanup_free_ char *path = store_vm_file(&c->store, name, "spec.yml");
		_cleanup_(spec_freep) struct vm_spec *spec = NULL;
		if (spec_find_in_file(path, name, &spec, NULL) < 0)
			spec = NULL;
		if (autostart_enable(name, spec, &r, &c->err) < 0)
			return EXIT_ERR;
	} else if (autostart_disable(name, &r, &c->err) < 0) {
		return EXIT_ERR;
	}
	print_result(c, name, on, &r);
	return EXIT_OK;
}

VERB_DEFINE(autostart, .name = "autostart", .fn = cmd_autostart, .opts = autostart_opts,
	    .opts_size = sizeof(struct autostart_cli), .min_args = 1, .max_args = 2, .args = "NAME [on|off]",
	    .complete = "vm;on off", .summary = "start a VM at boot and stop it at shutdown (a systemd user unit)");
