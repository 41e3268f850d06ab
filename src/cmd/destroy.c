#include "cmd.h"
#include "menu.h"
#include "vmops.h"

struct destroy_cli {
	struct destroy_opts o;
	const char *instance;
};

static const struct opt destroy_opts[] = {
	OPT_INSTANCE(struct destroy_cli),
	OPT_BOOL('d', "disk", struct destroy_cli, o.disk, "also delete the disk"),
	OPT_BOOL('f', "force", struct destroy_cli, o.force, "stop it first if it runs"),
	OPT_JSON(),
	OPT_END(),
};

static int cmd_destroy(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	struct destroy_cli *d = opts;
	_cleanup_free_ char *name = NULL;
	_cleanup_strv_ char **warnings = NULL;
	if (cmd_vm_name(c, argv[0], d->instance, &name))
		return EXIT_ERR;
	d->o.warnings = &warnings; /* the autostart unit's removal: systemctl missing, say */
	if (vm_destroy(&c->store, name, &d->o, &c->err) < 0)
		return EXIT_ERR;
	desktop_remove(name, NULL, NULL); /* its menu entries, if it had any */
	for (size_t i = 0; warnings && warnings[i] && !c->json; i++)
		log_warn("%s", warnings[i]);
	if (c->json) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "name", json_object_new_string(name));
		json_object_object_add(j, "destroyed", json_object_new_boolean(1));
		json_object_object_add(j, "warnings", cmd_json_strv(warnings));
		cmd_print_json(j);
	} else if (!c->quiet)
		printf("destroyed %s\n", name);
	return EXIT_OK;
}

VERB_DEFINE(destroy, .name = "destroy", .fn = cmd_destroy, .opts = destroy_opts,
	    .opts_size = sizeof(struct destroy_cli), .min_args = 1, .max_args = 1, .args = "NAME", .complete = "vm",
	    .summary = "remove a VM");
