/* hutch build NAME: fetch and verify the base image without creating the VM. */
#include "cmd.h"
#include "vmops.h"

static const struct opt build_opts[] = {
	OPT_STRING('f', "from", struct create_opts, from, "FILE.yml", "a spec file", .complete = "file"),
	OPT_STRING(0, "image", struct create_opts, image, "URL|NAME", "a cloud image, or a catalog name",
		   .complete = "image"),
	OPT_STRING(0, "checksum", struct create_opts, checksum, "SPEC",
		   "the image's sha256:/sha512: digest or sums URL"),
	OPT_JSON(),
	OPT_END(),
};

static int cmd_build(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	struct create_opts o = *(struct create_opts *)opts;
	o.name = argv[0];
	cmd_set_subject(c, o.name);
	struct cmd_progress prog;
	o.progress = cmd_progress_init(c, &prog);
	_cleanup_free_ char *path = NULL;
	int r = vm_build(&c->store, &o, &path, &c->err);
	bool interrupted = cmd_progress_done(&prog);
	if (r < 0)
		return interrupted ? 130 : EXIT_ERR;
	if (c->json) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "name", json_object_new_string(o.name));
		json_object_object_add(j, "image", path ? json_object_new_string(path) : NULL);
		cmd_print_json(j);
	} else if (!c->quiet)
		printf("%s: %s\n", o.name, path ? path : "micro template (built at start)");
	return EXIT_OK;
}

VERB_DEFINE(build, .name = "build", .fn = cmd_build, .opts = build_opts, .opts_size = sizeof(struct create_opts),
	    .min_args = 1, .max_args = 1, .args = "NAME", .complete = "vm",
	    .summary = "fetch and verify a VM's image without creating it");
