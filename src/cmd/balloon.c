/* hutch balloon NAME [--target SIZE|auto] [--json]: the balloon of a running VM, through its monitor. */
#include "client.h"
#include "cmd.h"

#include <string.h>

struct balloon_cli {
	const char *instance;
	const char *target;
};

static const struct opt balloon_opts[] = {
	OPT_INSTANCE(struct balloon_cli),
	OPT_STRING(0, "target", struct balloon_cli, target, "SIZE",
		   "set the guest's memory to SIZE (between its floor and its memory) until --target auto"),
	OPT_JSON(),
	OPT_END(),
};

static const char *size_of(json_object *o, const char *key, char *buf, size_t len)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !v)
		return "-";
	return cmd_human((uint64_t)json_object_get_int64(v), buf, len);
}

static int cmd_balloon(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	struct balloon_cli *o = opts;
	_cleanup_free_ char *name = NULL;
	if (cmd_vm_name(c, argv[0], o->instance, &name))
		return EXIT_ERR;
	json_object *req = json_object_new_object(), *res = NULL, *v;
	json_object_object_add(req, "op", json_object_new_string("balloon"));
	if (o->target) {
		uint64_t t;
		if (!strcmp(o->target, "auto")) {
			json_object_object_add(req, "target", json_object_new_string("auto"));
		} else if (parse_size(o->target, &t) == 0 && t <= INT64_MAX) {
			json_object_object_add(req, "target", json_object_new_int64((int64_t)t));
		} else {
			json_object_put(req);
			return cmd_usage(c, "--target: expected a size (512M, 1G) or auto, not '%s'", o->target);
		}
	}
	_cleanup_close_ int fd = -1;
	if (monitor_connect(&c->store, name, &fd, &c->err) < 0) {
		json_object_put(req);
		return EXIT_ERR;
	}
	if (monitor_request(fd, req, 15000, &res, &c->err) < 0)
		return EXIT_ERR;
	if (!json_object_object_get_ex(res, "ok", &v) || !json_object_get_boolean(v)) {
		hutch_error_set(&c->err, EIO, "%s",
				json_object_object_get_ex(res, "error", &v) ? json_object_get_string(v) : "failed");
		json_object_put(res);
		return EXIT_ERR;
	}
	if (c->json) {
		json_object_object_del(res, "ok");
		json_object_object_add(res, "name", json_object_new_string(name));
		cmd_print_json(res);
		return EXIT_OK;
	}
	char a[32], t[32], m[32], f[32], g[32];
	bool on = json_object_object_get_ex(res, "enabled", &v) && json_object_get_boolean(v);
	if (!on) {
		printf("%s: no balloon (balloon: false, or a warm clone)\n", name);
	} else {
		printf("memory:    %s of %s (floor %s)\n", size_of(res, "actual", a, sizeof(a)),
		       size_of(res, "max", m, sizeof(m)), size_of(res, "floor", f, sizeof(f)));
		printf("target:    %s%s\n", size_of(res, "target", t, sizeof(t)),
		       json_object_object_get_ex(res, "manual", &v) && json_object_get_boolean(v) ? " (manual)" : "");
		printf("available: %s in the guest\n", size_of(res, "guest_available", g, sizeof(g)));
		double psi = json_object_object_get_ex(res, "host_psi_avg10", &v) ? json_object_get_double(v) : 0;
		printf("host:      PSI memory avg10 %.2f%%, %s available\n", psi,
		       size_of(res, "host_available", a, sizeof(a)));
		printf("decision:  %s\n",
		       json_object_object_get_ex(res, "reason", &v) ? json_object_get_string(v) : "-");
		if (json_object_object_get_ex(res, "error", &v) && v)
			printf("error:     %s\n", json_object_get_string(v));
	}
	json_object_put(res);
	return EXIT_OK;
}

VERB_DEFINE(balloon, .name = "balloon", .fn = cmd_balloon, .opts = balloon_opts,
	    .opts_size = sizeof(struct balloon_cli), .min_args = 1, .max_args = 1, .args = "NAME", .complete = "vm",
	    .summary = "a running VM's balloon: size, target, guest memory, the last decision");
