/* hutch cp-image NAME REF [--as TAG]: a container image from the host into the guest's podman or
 * docker storage (cp_image.h). */
#include "cmd.h"
#include "cp_image.h"
#include "session.h"

#include <string.h>

static const struct opt cp_image_opts[] = {
	OPT_STRING(0, "as", struct cp_image_opts, as, "TAG", "tag the image so in the guest"),
	OPT_END(),
};

static int cmd_cp_image(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	const struct cp_image_opts *o = opts;
	cmd_set_subject(c, argv[0]);
	if (store_check_name(argv[0], &c->err) < 0)
		return EXIT_ERR;
	if (o->as && (!*o->as || o->as[0] == '-' || strpbrk(o->as, " \t\n")))
		return cmd_usage(c, "--as wants an image name such as localhost/app:1, not '%s'", o->as);
	struct cp_image_result res = {0};
	uint64_t t0 = now_ms();
	int r = cp_image(&c->store, argv[0], argv[1], o, &res, &c->err);
	if (r < 0)
		return r == -ECONNRESET ? EXEC_STATUS_LOST : EXIT_ERR; /* as ssh on a lost session */
	double secs = (double)(now_ms() - t0) / 1000.0;
	if (c->json) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "vm", json_object_new_string(argv[0]));
		json_object_object_add(j, "ref", json_object_new_string(argv[1]));
		json_object_object_add(j, "engine", json_object_new_string(res.engine));
		json_object_object_add(j, "image", json_object_new_string(res.image));
		json_object_object_add(j, "tag", res.tag ? json_object_new_string(res.tag) : NULL);
		json_object_object_add(j, "bytes", json_object_new_int64((int64_t)res.bytes));
		char sec[32];
		snprintf(sec, sizeof(sec), "%.2f", secs);
		json_object_object_add(j, "seconds", json_object_new_double_s(secs, sec));
		cmd_print_json(j);
	} else {
		char size[32];
		printf("loaded %s into %s's %s%s%s (%s in %.1f s)\n", *res.image ? res.image : argv[1], argv[0],
		       res.engine, res.tag ? " as " : "", res.tag ? res.tag : "",
		       res.bytes ? format_size(res.bytes, size, sizeof(size)) : "streamed", secs);
	}
	cp_image_result_release(&res);
	return EXIT_OK;
}

VERB_DEFINE(cp_image, .name = "cp-image", .fn = cmd_cp_image, .opts = cp_image_opts,
	    .opts_size = sizeof(struct cp_image_opts), .min_args = 2, .max_args = 2, .args = "NAME REF",
	    .complete = "vm", .summary = "copy a container image into a VM's podman or docker storage");
