#include "backend_libvirt.h"
#include "client.h"
#include "cmd.h"

#include <string.h>

/* hutch port NAME add|rm HOST:GUEST[/udp] | hutch port NAME ls — live, through the monitor. */
struct port_cli {
	const char *instance;
};

static const struct opt port_opts[] = {
	OPT_INSTANCE(struct port_cli),
	OPT_JSON(),
	OPT_END(),
};

/* argv: NAME, then the forward for add and rm. */
static int port_op(struct cmd_ctx *c, const struct port_cli *o, const char *op, char **argv)
{
	const char *spec = argv[1];
	bool ls = !strcmp(op, "port-ls");
	_cleanup_free_ char *name = NULL;
	if (cmd_vm_name(c, argv[0], o->instance, &name))
		return EXIT_ERR;
	_cleanup_close_ int fd = -1;
	json_object *res = NULL, *v;
	int lv = libvirt_port(&c->store, name, op, spec, &res, &c->err); /* 0: not a libvirt VM */
	if (lv < 0)
		return EXIT_ERR;
	if (!lv && monitor_connect(&c->store, name, &fd, &c->err) < 0)
		return EXIT_ERR;
	json_object *req = lv ? NULL : json_object_new_object();
	if (req)
		json_object_object_add(req, "op", json_object_new_string(op));
	if (req && spec)
		json_object_object_add(req, "spec", json_object_new_string(spec));
	if (req && monitor_request(fd, req, 15000, &res, &c->err) < 0)
		return EXIT_ERR;
	if (!json_object_object_get_ex(res, "ok", &v) || !json_object_get_boolean(v)) {
		hutch_error_set(&c->err, EIO, "%s",
				json_object_object_get_ex(res, "error", &v) ? json_object_get_string(v) : "failed");
		json_object_put(res);
		return EXIT_ERR;
	}
	json_object *fw = NULL, *origins = NULL;
	json_object_object_get_ex(res, "forwards", &fw);
	json_object_object_get_ex(res, "origins", &origins); /* static, or auto (network.auto_forward) */
	if (c->json) {
		json_object *out = json_object_new_object();
		json_object_object_add(out, "name", json_object_new_string(name));
		json_object_object_add(out, "forwards", json_object_get(fw));
		if (origins)
			json_object_object_add(out, "origins", json_object_get(origins));
		cmd_print_json(out);
	} else if (ls || !c->quiet) {
		for (size_t i = 0; fw && i < json_object_array_length(fw); i++) {
			const char *origin =
				origins ? json_object_get_string(json_object_array_get_idx(origins, i)) : NULL;
			printf("127.0.0.1:%s%s\n", json_object_get_string(json_object_array_get_idx(fw, i)),
			       origin && !strcmp(origin, "auto") ? " auto" : "");
		}
	}
	json_object_put(res);
	return EXIT_OK;
}

static int port_add(struct cmd_ctx *c, void *opts, int argc, char **argv) { return port_op(c, opts, "port-add", argv); }

static int port_rm(struct cmd_ctx *c, void *opts, int argc, char **argv) { return port_op(c, opts, "port-rm", argv); }

static int port_ls(struct cmd_ctx *c, void *opts, int argc, char **argv) { return port_op(c, opts, "port-ls", argv); }

static const struct verb port_subs[] = {
	VERB_SUB(.name = "add", .fn = port_add, .min_args = 1, .max_args = 1, .args = "HOST:GUEST[/tcp|/udp]",
		 .summary = "forward 127.0.0.1:HOST to the guest's port GUEST"),
	VERB_SUB(.name = "rm", .fn = port_rm, .min_args = 1, .max_args = 1, .args = "HOST:GUEST[/tcp|/udp]",
		 .summary = "remove a forward"),
	VERB_SUB(.name = "ls", .fn = port_ls, .summary = "list the forwards"),
	VERB_SUB(.name = "list", .fn = port_ls, .flags = VERB_HIDDEN),
	{0},
};

VERB_DEFINE(port, .name = "port", .opts = port_opts, .opts_size = sizeof(struct port_cli), .args = "NAME",
	    .complete = "vm", .summary = "change port forwards of a running VM", .subs = port_subs, .sub_at = 1);
