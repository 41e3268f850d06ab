#include "cmd.h"
#include "menu.h"
#include "vmops.h"

static int create_accel(struct cmd_ctx *c, void *opts, const struct opt *o, const char *arg)
{
	return cmd_parse_accel(c, arg, &((struct create_opts *)opts)->accel);
}

static const struct opt create_opts[] = {
	OPT_STRING('t', "template", struct create_opts, template, "NAME", "a built-in template", .complete = "micro"),
	OPT_STRING('f', "from", struct create_opts, from, "FILE.yml", "a spec file", .complete = "file"),
	OPT_STRING(0, "image", struct create_opts, image, "URL|NAME", "a cloud image, or a catalog name",
		   .complete = "image"),
	OPT_STRING(0, "checksum", struct create_opts, checksum, "SPEC",
		   "the image's sha256:/sha512: digest or sums URL"),
	OPT_STRING(0, "oci", struct create_opts, oci, "REF",
		   "a container image: oci:DIR[:TAG], oci-archive:FILE, docker-archive:FILE or containers-storage:NAME",
		   .complete = "file"),
	OPT_BOOL(0, "pull", struct create_opts, pull, "ask upstream for the checksum even when cached"),
	OPT_INSTANCE(struct create_opts),
	OPT_SIZE('m', "memory", struct create_opts, memory, "memory, overriding the spec"),
	OPT_UINT('c', "cpus", struct create_opts, cpus, "N", 1, 256, "virtual CPUs, overriding the spec"),
	OPT_SIZE('d', "disk", struct create_opts, disk, "disk size, overriding the spec"),
	OPT_SIZE(0, "root-size", struct create_opts, root_size, "cap the root filesystem of a container image's disk"),
	OPT_CALLBACK(0, "accel", "MODE", create_accel, "auto, kvm or tcg, overriding the spec and config.yml",
		     .complete = "auto kvm tcg"),
	OPT_STRV(0, "share", struct create_opts, shares, "HOST:GUEST[:ro]",
		 "share a host dir at GUEST in the guest (repeatable; :ro read-only)", .complete = "dir"),
	OPT_STRING(0, "backend", struct create_opts, backend, "qemu|libvirt", "the backend, fixed for the VM's life",
		   .complete = "qemu libvirt"),
	OPT_STRING(0, "connect", struct create_opts, uri, "URI", "libvirt's URI (implies --backend libvirt)"),
	OPT_JSON(),
	OPT_END(),
};

static int cmd_create(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	struct create_opts o = *(struct create_opts *)opts;
	if (!!o.template + !!o.from + !!o.image + !!o.oci > 1)
		return cmd_usage(c, "--template, --from, --image and --oci exclude each other");
	if (o.checksum && !o.image)
		return cmd_usage(c, "--checksum goes with --image");
	struct cmd_progress prog;
	o.progress = cmd_progress_init(c, &prog);
	o.name = argv[0];
	cmd_set_subject(c, o.name);
	_cleanup_free_ char *name = NULL;
	_cleanup_strv_ char **warnings = NULL;
	o.warnings = &warnings; /* autostart: true without systemctl, say */
	int r = vm_create(&c->store, &o, &name, &c->err);
	cmd_progress_done(&prog);
	if (r < 0)
		return EXIT_ERR;
	cmd_set_subject(c, name);
	desktop_autosync(&c->store, name, false); /* menu entries, when the spec has apps */
	for (size_t i = 0; warnings && warnings[i] && !c->json; i++)
		log_warn("%s", warnings[i]);
	if (c->json) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "name", json_object_new_string(name));
		json_object_object_add(j, "created", json_object_new_boolean(1));
		json_object_object_add(j, "warnings", cmd_json_strv(warnings));
		cmd_print_json(j);
	} else if (!c->quiet)
		printf("created %s\n", name);
	return EXIT_OK;
}

VERB_DEFINE(create, .name = "create", .fn = cmd_create, .opts = create_opts, .opts_size = sizeof(struct create_opts),
	    .min_args = 1, .max_args = 1, .args = "NAME", .complete = "vm",
	    .summary = "define a VM from a template, a spec file, or hutch.yml");
