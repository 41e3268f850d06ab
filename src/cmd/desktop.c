#include "cmd.h"
#include "menu.h"

#include <string.h>

/* hutch desktop sync NAME | hutch desktop rm NAME: the VM's menu entries on the host. */
struct desktop_cli {
	const char *instance;
};

static const struct opt desktop_opts[] = {
	OPT_INSTANCE(struct desktop_cli),
	OPT_JSON(),
	OPT_END(),
};

static void print_list(const char *label, char *const *v)
{
	for (size_t i = 0; v && v[i]; i++)
		printf("%s %s\n", label, v[i]);
}

static int desktop_sync_cmd(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	const struct desktop_cli *o = opts;
	_cleanup_free_ char *name = NULL;
	if (cmd_vm_name(c, argv[0], o->instance, &name))
		return EXIT_ERR;
	struct desktop_sync_opts so = {.discover = true};
	struct desktop_sync_result r = {0};
	if (desktop_sync(&c->store, name, &so, &r, &c->err) < 0)
		return EXIT_ERR;
	for (size_t i = 0; r.warnings && r.warnings[i]; i++)
		log_warn("%s", r.warnings[i]);
	if (c->json) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "name", json_object_new_string(name));
		json_object_object_add(j, "entries", cmd_json_strv(r.entries));
		json_object_object_add(j, "removed", cmd_json_strv(r.removed));
		json_object_object_add(j, "discovered", json_object_new_int((int)r.discovered));
		json_object_object_add(j, "warnings", cmd_json_strv(r.warnings));
		cmd_print_json(j);
	} else if (!c->quiet) {
		print_list("wrote", r.entries);
		print_list("removed", r.removed);
	}
	desktop_sync_result_release(&r);
	return EXIT_OK;
}

static int desktop_rm_cmd(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	const struct desktop_cli *o = opts;
	_cleanup_free_ char *name = NULL;
	_cleanup_strv_ char **removed = NULL;
	if (cmd_vm_name(c, argv[0], o->instance, &name) || desktop_remove(name, &removed, &c->err) < 0)
		return EXIT_ERR;
	if (c->json) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "name", json_object_new_string(name));
		json_object_object_add(j, "removed", cmd_json_strv(removed));
		cmd_print_json(j);
	} else if (!c->quiet) {
		print_list("removed", removed);
	}
	return EXIT_OK;
}

static const struct verb desktop_subs[] = {
	VERB_SUB(.name = "sync", .fn = desktop_sync_cmd, .min_args = 1, .max_args = 1, .args = "NAME", .complete = "vm",
		 .summary = "write menu entries for the spec's apps and the running guest's own, in a folder per VM"),
	VERB_SUB(.name = "rm", .fn = desktop_rm_cmd, .min_args = 1, .max_args = 1, .args = "NAME", .complete = "vm",
		 .summary = "remove the VM's menu entries, icons and folder"),
	{0},
};

VERB_DEFINE(desktop, .name = "desktop", .opts = desktop_opts, .opts_size = sizeof(struct desktop_cli),
	    .summary = "host menu entries for a VM's apps", .subs = desktop_subs);
