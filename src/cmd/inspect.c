#include "autostart.h"
#include "backend.h"
#include "backend_libvirt.h"
#include "cmd.h"
#include "netvm.h"
#include "ready.h"
#include "shares.h"
#include "warm.h"

#include <string.h>
#include <time.h>

static int show(struct cmd_ctx *c, struct vm *vm, const struct backend_ops *b, const char *name)
{
	struct vm_status st;
	if (b->status(vm, &st, &c->err) < 0)
		return EXIT_ERR;
	_cleanup_free_ char *spec = spec_render_yaml(vm->spec);
	_cleanup_free_ char *dir = store_vm_dir(&c->store, name);
	_cleanup_free_ char *state = store_read_state(&c->store, name);
	bool image = vm->spec->source == SOURCE_IMAGE;
	struct ci_status ci = {0};
	struct hutch_error cierr = {0};
	if (image && st.running && st.agent && ready_cloud_init_state(&c->store, name, &ci, &cierr) < 0)
		ci_status_release(&ci);
	hutch_error_clear(&cierr);
	/* the host key made at create, and whether `hutch ssh` checks it (see ready.c's fallback) */
	_cleanup_free_ char *hk_path = store_vm_file(&c->store, name, "ssh_host_ed25519_key.pub");
	_cleanup_free_ char *host_key = NULL;
	size_t hk_len = 0;
	if (!image || read_file(hk_path, 64 * 1024, &host_key, &hk_len, NULL) < 0)
		host_key = NULL;
	else
		host_key[strcspn(host_key, "\r\n")] = 0;
	const char *hk_check = ready_host_key_strict(&c->store, name) ? "strict" : "first-use";
	struct warm_status ws = {0};
	if (st.running && !strcmp(b->name, "qemu"))
		warm_status(&c->store, name, &ws);
	_cleanup_free_ char *uri_buf = NULL;
	const char *uri = strcmp(b->name, "libvirt") ? NULL : libvirt_uri_of(vm, &uri_buf);
	if (c->json) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "name", json_object_new_string(name));
		json_object_object_add(j, "backend", json_object_new_string(b->name));
		if (uri)
			json_object_object_add(j, "uri", json_object_new_string(uri));
		json_object_object_add(j, "state", json_object_new_string(st.running ? "running" : "stopped"));
		json_object_object_add(j, "memory", json_object_new_int64((int64_t)vm->spec->memory));
		json_object_object_add(j, "cpus", json_object_new_int((int)vm->spec->cpus));
		json_object_object_add(
			j, "source",
			json_object_new_string(vm->spec->source == SOURCE_TEMPLATE ? "template" : "image"));
		if (st.running) {
			json_object_object_add(j, "accel", json_object_new_string(st.kvm ? "kvm" : "tcg"));
			json_object_object_add(j, "uptime_s", json_object_new_int64((int64_t)st.uptime_s));
			json_object_object_add(j, "agent", json_object_new_string(st.agent_state));
			json_object_object_add(j, "agent_since", json_object_new_int64(st.agent_since));
			json_object_object_add(j, "agent_why", json_object_new_string(st.agent_why));
			json_object_object_add(j, "sessions", json_object_new_int(st.sessions));
			if (ws.restored_from[0]) {
				json_object_object_add(j, "restored_from", json_object_new_string(ws.restored_from));
				json_object_object_add(j, "restore_ms", json_object_new_int64((int64_t)ws.restore_ms));
			}
			if (image) {
				json_object *o = json_object_new_object();
				json_object_object_add(o, "state", json_object_new_string(ci_state_names[ci.state]));
				if (ci.stage[0])
					json_object_object_add(o, "stage", json_object_new_string(ci.stage));
				json_object_object_add(o, "failures", cmd_json_strv(ci.failures));
				json_object_object_add(j, "cloud_init", o);
			}
		}
		if (host_key) {
			json_object_object_add(j, "host_key", json_object_new_string(host_key));
			json_object_object_add(j, "host_key_check", json_object_new_string(hk_check));
		}
		json_object_object_add(j, "shares", shares_inspect(&c->store, name, vm->spec, st.running));
		json_object *net = st.running ? net_inspect(&c->store, name) : NULL;
		if (net)
			json_object_object_add(j, "net_setup", net);
		json_object_object_add(j, "autostart", json_object_new_boolean(autostart_is_on(name)));
		json_object_object_add(j, "dir", json_object_new_string(dir));
		json_object_object_add(j, "spec", json_object_new_string(spec));
		json_object *last = state ? json_tokener_parse(state) : NULL;
		if (last)
			json_object_object_add(j, "last", last);
		cmd_print_json(j);
	} else {
		printf("name:    %s\nbackend: %s\n", name, b->name);
		if (uri)
			printf("uri:     %s\n", uri);
		printf("state:   %s\n", st.running ? "running" : "stopped");
		if (st.running) {
			printf("accel:   %s\nuptime:  %llus\nagent:   %s", st.kvm ? "kvm" : "tcg",
			       (unsigned long long)st.uptime_s, st.agent_state);
			/* since when and why, e.g. "gone for 12s (the guest closed the agent port)" */
			int64_t ago = st.agent_since ? (int64_t)time(NULL) - st.agent_since : -1;
			if (ago >= 0 && st.agent_why[0])
				printf(" for %llds (%s)", (long long)ago, st.agent_why);
			printf("\nsessions: %d\n", st.sessions);
			if (ws.restored_from[0])
				printf("restored from template %s in %llu ms\n", ws.restored_from,
				       (unsigned long long)ws.restore_ms);
		}
		if (st.running && image) {
			printf("cloud-init: %s%s%s%s\n", ci_state_names[ci.state], ci.stage[0] ? " (" : "", ci.stage,
			       ci.stage[0] ? ")" : "");
			for (char **m = ci.failures; m && *m; m++)
				printf("  failed: %s\n", *m);
		}
		if (host_key)
			printf("host key: %s (%s check)\n", host_key, hk_check);
		json_object *shares = shares_inspect(&c->store, name, vm->spec, st.running);
		_cleanup_free_ char *shares_text = shares_describe(shares);
		json_object_put(shares);
		if (shares_text)
			fputs(shares_text, stdout);
		json_object *net = st.running ? net_inspect(&c->store, name) : NULL, *ng, *ne;
		if (net && json_object_object_get_ex(net, "guest", &ng)) {
			bool failed = json_object_object_get_ex(net, "error", &ne);
			printf("links:   %s in the guest%s%s\n",
			       strcmp(json_object_get_string(ng), "done") ? json_object_get_string(ng) : "set up",
			       failed ? ": " : "", failed ? json_object_get_string(ne) : "");
		}
		json_object_put(net);
		printf("autostart: %s\n", autostart_is_on(name) ? "on" : "off");
		printf("dir:     %s\n", dir);
		if (state)
			printf("last:    %s\n", state);
		printf("spec:\n%s", spec);
	}
	ci_status_release(&ci);
	return EXIT_OK;
}

struct inspect_cli {
	const char *instance;
	bool render;
};

static const struct opt inspect_opts[] = {
	OPT_INSTANCE(struct inspect_cli),
	OPT_BOOL('r', "render", struct inspect_cli, render, "print the exact QEMU argv, seed and XML; start nothing"),
	OPT_JSON(),
	OPT_END(),
};

static int cmd_inspect(struct cmd_ctx *c, void *opts, int argc, char **argv)
{
	const struct inspect_cli *o = opts;
	_cleanup_free_ char *name = NULL;
	if (cmd_vm_name(c, argv[0], o->instance, &name))
		return EXIT_ERR;
	struct vm vm;
	if (vm_load(&c->store, name, &vm, &c->err) < 0)
		return EXIT_ERR;
	const struct backend_ops *b = backend_for(vm.spec, &c->err);
	int rc = EXIT_ERR;
	if (!b)
		goto out;
	if (o->render) {
		struct strbuf sb = STRBUF_INIT;
		if (b->render(&vm, &sb, &c->err) < 0) {
			strbuf_release(&sb);
			goto out;
		}
		if (c->json) {
			json_object *j = json_object_new_object();
			json_object_object_add(j, "name", json_object_new_string(name));
			json_object_object_add(j, "backend", json_object_new_string(b->name));
			json_object_object_add(j, "render", json_object_new_string(strbuf_str(&sb)));
			cmd_print_json(j);
		} else
			fputs(strbuf_str(&sb), stdout);
		strbuf_release(&sb);
		rc = EXIT_OK;
		goto out;
	}
	rc = show(c, &vm, b, name);
out:
	vm_release(&vm);
	return rc;
}

VERB_DEFINE(inspect, .name = "inspect", .fn = cmd_inspect, .opts = inspect_opts,
	    .opts_size = sizeof(struct inspect_cli), .min_args = 1, .max_args = 1, .args = "NAME", .complete = "vm",
	    .summary = "show a VM, or the exact QEMU argv (--render)");
