/* hutch snapshot save|restore|ls|rm NAME [TAG]: snapshots of persistent VMs (src/lib/snapshot.h). */
#include "cmd.h"
#include "snapshot.h"

#include <string.h>
#include <time.h>

static const struct opt snapshot_opts[] = {
	OPT_JSON(),
	OPT_END(),
};

/* Whether the snapshot keeps RAM (its size may be unknown: a remote libvirt host's disk). */
static bool has_ram(json_object *o)
{
	json_object *v;
	return o && json_object_object_get_ex(o, "ram", &v) && json_object_get_boolean(v);
}

static void print_row(json_object *o)
{
	char size[32] = "-", when[32] = "-";
	time_t t = (time_t)cmd_json_int(o, "date");
	struct tm tm;
	if (t > 0 && localtime_r(&t, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	int64_t vm = cmd_json_int(o, "vm_state_bytes");
	if (vm > 0)
		cmd_human((uint64_t)vm, size, sizeof(size));
	printf("%-24s %-9s %10s %-19s %lds\n", cmd_json_str(o, "tag"), has_ram(o) ? "disk+ram" : "disk", size, when,
	       (long)cmd_json_int(o, "vm_clock_s"));
}

static int snapshot_ls(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	json_object *all = NULL;
	if (snapshot_list(&c->store, argv[0], &all, &c->err) < 0)
		return EXIT_ERR;
	if (c->json) {
		cmd_print_json(all);
		return EXIT_OK;
	}
	printf("%-24s %-9s %10s %-19s %s\n", "TAG", "KIND", "RAM", "TAKEN", "VM-CLOCK");
	for (size_t i = 0; i < json_object_array_length(all); i++)
		print_row(json_object_array_get_idx(all, i));
	json_object_put(all);
	return EXIT_OK;
}

static int snapshot_save_cmd(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	char tag[64];
	if (argc > 1)
		snprintf(tag, sizeof(tag), "%s", argv[1]);
	else {
		time_t t = time(NULL);
		struct tm tm;
		localtime_r(&t, &tm);
		strftime(tag, sizeof(tag), "snap-%Y%m%d-%H%M%S", &tm);
	}
	json_object *o = NULL;
	if (snapshot_save(&c->store, argv[0], tag, &o, &c->err) < 0)
		return EXIT_ERR;
	if (c->json)
		cmd_print_json(o);
	else {
		if (!c->quiet)
			printf("saved snapshot %s of %s (%s)\n", tag, argv[0],
			       has_ram(o) ? "disk and RAM" : "disk only");
		json_object_put(o);
	}
	return EXIT_OK;
}

static int snapshot_restore_cmd(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	if (snapshot_restore(&c->store, argv[0], argv[1], &c->err) < 0)
		return EXIT_ERR;
	if (c->json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "name", json_object_new_string(argv[0]));
		json_object_object_add(o, "restored", json_object_new_string(argv[1]));
		cmd_print_json(o);
	} else if (!c->quiet)
		printf("restored %s to snapshot %s\n", argv[0], argv[1]);
	return EXIT_OK;
}

static int snapshot_rm_cmd(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	if (snapshot_remove(&c->store, argv[0], argv[1], &c->err) < 0)
		return EXIT_ERR;
	if (c->json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "name", json_object_new_string(argv[0]));
		json_object_object_add(o, "removed", json_object_new_string(argv[1]));
		cmd_print_json(o);
	} else if (!c->quiet)
		printf("removed snapshot %s of %s\n", argv[1], argv[0]);
	return EXIT_OK;
}

static const struct verb snapshot_subs[] = {
	VERB_SUB(.name = "save", .fn = snapshot_save_cmd, .min_args = 1, .max_args = 2, .args = "NAME [TAG]",
		 .complete = "vm", .summary = "save disk and RAM of a running VM, the disk of a stopped one"),
	VERB_SUB(.name = "restore", .fn = snapshot_restore_cmd, .min_args = 2, .max_args = 2, .args = "NAME TAG",
		 .complete = "vm", .summary = "return the VM to a snapshot, its processes running again"),
	VERB_SUB(.name = "ls", .fn = snapshot_ls, .min_args = 1, .max_args = 1, .args = "NAME", .complete = "vm",
		 .summary = "list a VM's snapshots with size and time"),
	VERB_SUB(.name = "rm", .fn = snapshot_rm_cmd, .min_args = 2, .max_args = 2, .args = "NAME TAG",
		 .complete = "vm", .summary = "delete a snapshot"),
	{0},
};

VERB_DEFINE(snapshot, .name = "snapshot", .opts = snapshot_opts, .opts_size = 0,
	    .summary = "snapshots of a persistent VM", .subs = snapshot_subs, .sub_at = 0);
