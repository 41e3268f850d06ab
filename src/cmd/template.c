/* hutch template ls | save NAME | rm NAME: the warm templates that run --rm restores disposables
 * from (src/lib/warm.h). */
#include "cmd.h"
#include "warm.h"

#include <string.h>
#include <time.h>

struct template_cli {
	uint64_t timeout_ms;
};

static const struct opt template_opts[] = {
	OPT_DURATION(0, "timeout", struct template_cli, timeout_ms, "SEC",
		     "save: give the template VM SEC to boot and answer (default 300; a cloud image under TCG "
		     "takes a minute or more)"),
	OPT_JSON(),
	OPT_END(),
};

static void print_row(json_object *o)
{
	char mem[32], disk[32], state[32], when[32] = "-";
	time_t t = (time_t)cmd_json_int(o, "created");
	struct tm tm;
	if (t > 0 && localtime_r(&t, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm);
	printf("%-20s %-16.16s %8s %8s %9s %-16s %s\n", cmd_json_str(o, "name"), cmd_json_str(o, "key"),
	       cmd_human((uint64_t)cmd_json_int(o, "mem_bytes"), mem, sizeof(mem)),
	       cmd_human((uint64_t)cmd_json_int(o, "disk_bytes"), disk, sizeof(disk)),
	       cmd_human((uint64_t)cmd_json_int(o, "state_bytes"), state, sizeof(state)), when,
	       cmd_json_str(o, "kernel_release"));
}

static int template_ls(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	json_object *all = NULL;
	if (warm_list(&c->store, &all, &c->err) < 0)
		return EXIT_ERR;
	if (c->json) {
		cmd_print_json(all);
		return EXIT_OK;
	}
	printf("%-20s %-16s %8s %8s %9s %-16s %s\n", "NAME", "KEY", "MEMORY", "DISK", "STATE", "CREATED", "KERNEL");
	for (size_t i = 0; i < json_object_array_length(all); i++)
		print_row(json_object_array_get_idx(all, i));
	json_object_put(all);
	return EXIT_OK;
}

static int template_save(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	const struct template_cli *t = opts;
	json_object *o = NULL;
	if (warm_save(&c->store, argv[0], t->timeout_ms, &o, &c->err) < 0)
		return EXIT_ERR;
	if (c->json) {
		cmd_print_json(o);
		return EXIT_OK;
	}
	char disk[32];
	if (!c->quiet)
		printf("saved warm template %s (booted in %.2f s; %s on disk)\n", argv[0],
		       (double)cmd_json_int(o, "boot_ms") / 1000.0,
		       cmd_human((uint64_t)cmd_json_int(o, "disk_bytes"), disk, sizeof(disk)));
	json_object_put(o);
	return EXIT_OK;
}

static int template_rm(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	for (int i = 0; i < argc; i++) {
		if (warm_remove(&c->store, argv[i], &c->err) < 0)
			return EXIT_ERR;
		if (!c->quiet && !c->json)
			printf("removed warm template %s\n", argv[i]);
	}
	if (c->json) {
		json_object *o = json_object_new_object(), *arr = json_object_new_array();
		for (int i = 0; i < argc; i++)
			json_object_array_add(arr, json_object_new_string(argv[i]));
		json_object_object_add(o, "removed", arr);
		cmd_print_json(o);
	}
	return EXIT_OK;
}

static const struct verb template_subs[] = {
	VERB_SUB(.name = "ls", .fn = template_ls, .summary = "list the warm templates"),
	VERB_SUB(.name = "save", .fn = template_save, .min_args = 1, .max_args = 1, .args = "NAME",
		 .complete = "vm micro", .summary = "boot NAME (micro or a defined VM) and save it as a warm template"),
	VERB_SUB(.name = "rm", .fn = template_rm, .min_args = 1, .max_args = -1, .args = "NAME...",
		 .summary = "remove warm templates (running clones keep theirs)"),
	{0},
};

static const struct template_cli template_defaults = {.timeout_ms = 300000};

VERB_DEFINE(template, .name = "template", .opts = template_opts, .opts_size = sizeof(struct template_cli),
	    .defaults = &template_defaults, .summary = "warm templates: disposables restored instead of booted",
	    .subs = template_subs, .sub_at = 0);
