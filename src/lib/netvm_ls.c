/* What needs the running VMs: `hutch net ls` (every link among the defined VMs, and what each end's
 * monitor says of it), and starting a client's netvm first. Apart from netvm.c, which only plans. */
#include "client.h"
#include "netvm.h"
#include "vmops.h"

#include <string.h>

/* The running VM's answer to net-ls (monitor_net.c: mon_net_json), or NULL. */
static json_object *ask_all(struct store *st, const char *name)
{
	if (!store_is_running(st, name))
		return NULL;
	_cleanup_close_ int fd = -1;
	struct hutch_error err = {0};
	json_object *req = json_object_new_object(), *res = NULL, *v;
	json_object_object_add(req, "op", json_object_new_string("net-ls"));
	if (monitor_connect(st, name, &fd, &err) < 0 || monitor_request(fd, req, 5000, &res, &err) < 0) {
		hutch_error_clear(&err);
		return NULL;
	}
	if (json_object_object_get_ex(res, "ok", &v) && json_object_get_boolean(v))
		return res;
	json_object_put(res);
	return NULL;
}

json_object *net_inspect(struct store *st, const char *name)
{
	json_object *res = ask_all(st, name), *v, *o = NULL;
	if (res && json_object_object_get_ex(res, "guest", &v) && strcmp(json_object_get_string(v), "none")) {
		o = json_object_new_object();
		json_object_object_add(o, "guest", json_object_new_string(json_object_get_string(v)));
		if (json_object_object_get_ex(res, "guest_error", &v))
			json_object_object_add(o, "error", json_object_new_string(json_object_get_string(v)));
	}
	json_object_put(res);
	return o;
}

/* The running VM's view of its links (monitor_net.c's net-ls), or NULL. */
static json_object *ask(struct store *st, const char *name)
{
	if (!store_is_running(st, name))
		return NULL;
	_cleanup_close_ int fd = -1;
	struct hutch_error err = {0};
	json_object *req = json_object_new_object(), *res = NULL, *links = NULL, *v;
	json_object_object_add(req, "op", json_object_new_string("net-ls"));
	if (monitor_connect(st, name, &fd, &err) < 0 || monitor_request(fd, req, 5000, &res, &err) < 0) {
		hutch_error_clear(&err);
		return NULL;
	}
	if (json_object_object_get_ex(res, "ok", &v) && json_object_get_boolean(v) &&
	    json_object_object_get_ex(res, "links", &links))
		json_object_get(links);
	else
		links = NULL;
	json_object_put(res);
	return links;
}

/* "up", "down", "connecting" as the monitor says; "stopped" when the VM is not running. */
static const char *end_state(json_object *links, const char *peer)
{
	if (!links)
		return "stopped";
	for (size_t i = 0; i < json_object_array_length(links); i++) {
		json_object *e = json_object_array_get_idx(links, i), *p, *s;
		if (json_object_object_get_ex(e, "peer", &p) && !strcmp(json_object_get_string(p), peer) &&
		    json_object_object_get_ex(e, "state", &s))
			return json_object_get_string(s);
	}
	return "absent"; /* running, but started before this link existed */
}

int net_ls(struct store *st, json_object **ret, struct hutch_error *err)
{
	struct net_link *links = NULL;
	size_t n = 0;
	int r = net_links_all(st, NULL, &links, &n, err);
	if (r < 0)
		return r;
	json_object *arr = json_object_new_array();
	for (size_t i = 0; i < n; i++) {
		const struct net_link *l = &links[i];
		json_object *nv = ask(st, l->netvm), *cv = ask(st, l->client), *e = json_object_new_object();
		char a[16], b[16], ifn[16];
		json_object_object_add(e, "netvm", json_object_new_string(l->netvm));
		json_object_object_add(e, "client", json_object_new_string(l->client));
		_cleanup_free_ char *sub = xasprintf("%s/31", net_addr_str(l->subnet, a));
		json_object_object_add(e, "subnet", json_object_new_string(sub));
		json_object_object_add(e, "pinned", json_object_new_boolean(l->pinned));
		json_object_object_add(e, "client_addr", json_object_new_string(net_addr_str(l->subnet, a)));
		json_object_object_add(e, "netvm_addr", json_object_new_string(net_addr_str(l->subnet + 1, b)));
		json_object_object_add(e, "netvm_ifname", json_object_new_string(net_ifname(l->client, ifn)));
		json_object_object_add(e, "netvm_end", json_object_new_string(end_state(nv, l->client)));
		json_object_object_add(e, "client_end", json_object_new_string(end_state(cv, l->netvm)));
		json_object_array_add(arr, e);
		json_object_put(nv);
		json_object_put(cv);
	}
	net_links_free(links, n);
	*ret = arr;
	return 0;
}

int net_start_netvm(struct store *st, const struct vm_spec *spec, const struct start_opts *o, struct hutch_error *err)
{
	if (spec->net_mode != NET_NETVM || !spec->netvm)
		return 0;
	if (!store_is_running(st, spec->netvm)) {
		struct start_opts no = {.timeout_ms = o->timeout_ms};
		struct start_result res = {0};
		int r = vm_start(st, spec->netvm, &no, &res, err);
		/* a netvm started at the same moment by another client is as good */
		if (r == -EALREADY) {
			hutch_error_clear(err);
			r = 0;
		}
		if (r < 0) {
			hutch_error_wrap(err, "starting its netvm '%s'", spec->netvm);
			return r;
		}
	}
	struct net_plan p;
	int r = net_plan_make(st, spec, &p, err);
	if (r < 0)
		return r;
	if (p.has_up && access(p.up.sock, F_OK) < 0)
		r = hutch_error_set(err, ENOENT,
				    "netvm '%s' was started before '%s' became its client, so it has no link for it: "
				    "restart it ('hutch stop %s; hutch start %s')",
				    spec->netvm, spec->name, spec->netvm, spec->netvm);
	net_plan_release(&p);
	return r;
}
