/* Joining and healing netvm links over QMP (see monitor_net.h). */
#include "monitor_net.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define JOIN_WAIT_MS 3000 /* a join that saw no NETDEV_STREAM_CONNECTED by then is tried again */
#define RETRY_MIN_MS 250
#define RETRY_MAX_MS 2000

static const char *const state_names[] = {"down", "connecting", "up"};
static const char *const netconf_names[] = {"none", "pending", "done", "failed", "no answer"};

static void logf_(void (*log)(const char *), const char *fmt, ...) _printf_(2, 3);
static void logf_(void (*log)(const char *), const char *fmt, ...)
{
	if (!log)
		return;
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log(buf);
}

static void set_state(struct mon_link *l, enum mon_link_state s)
{
	if (l->state != s)
		l->since = (uint64_t)time(NULL);
	l->state = s;
}

void mon_net_init(struct mon_net *n, const char *name, const struct net_plan *p)
{
	memset(n, 0, sizeof(*n));
	n->name = xstrdup(name);
	if (!p)
		return;
	n->links = xcalloc(p->n_down + 1, sizeof(*n->links));
	if (p->has_up) {
		n->has_up = true;
		n->links[n->n++] = (struct mon_link){.peer = xstrdup(p->up.netvm),
						     .netdev = xstrdup(NET_UP_STREAM_ID),
						     .addr = p->up.subnet,
						     .peer_addr = p->up.subnet + 1,
						     .sock = xstrdup(p->up.sock),
						     .since = (uint64_t)time(NULL)};
	}
	for (size_t i = 0; i < p->n_down; i++) {
		/* a socket left by a netvm whose monitor was killed would make QEMU's bind fail */
		unlink(p->down[i].sock);
		n->links[n->n++] = (struct mon_link){.peer = xstrdup(p->down[i].client),
						     .netdev = xasprintf("down%zu", i),
						     .addr = p->down[i].subnet + 1,
						     .peer_addr = p->down[i].subnet,
						     .sock = xstrdup(p->down[i].sock),
						     .since = (uint64_t)time(NULL)};
	}
}

void mon_net_release(struct mon_net *n)
{
	for (size_t i = 0; i < n->n; i++) {
		free(n->links[i].peer);
		free(n->links[i].netdev);
		free(n->links[i].sock);
	}
	free(n->links);
	free(n->name);
	free(n->words);
	memset(n, 0, sizeof(*n));
}

static void netdev_del(struct qmp *q, const char *id)
{
	json_object *a = json_object_new_object();
	json_object_object_add(a, "id", json_object_new_string(id));
	struct hutch_error err = {0};
	qmp_execute(q, "netdev_del", a, 5000, NULL, &err); /* absent the first time: fine */
	hutch_error_clear(&err);
}

/* Delete what an earlier join left, then the stream netdev to the netvm and its hub port. */
static void join(struct mon_link *l, struct qmp *q, uint64_t now, void (*log)(const char *))
{
	netdev_del(q, NET_UP_PORT_ID);
	netdev_del(q, NET_UP_STREAM_ID);
	json_object *addr = json_object_new_object(), *a = json_object_new_object();
	json_object_object_add(addr, "type", json_object_new_string("unix"));
	json_object_object_add(addr, "path", json_object_new_string(l->sock));
	json_object_object_add(a, "type", json_object_new_string("stream"));
	json_object_object_add(a, "id", json_object_new_string(NET_UP_STREAM_ID));
	json_object_object_add(a, "server", json_object_new_boolean(0));
	json_object_object_add(a, "addr", addr);
	struct hutch_error err = {0};
	int r = qmp_execute(q, "netdev_add", a, 5000, NULL, &err);
	if (r == 0) {
		a = json_object_new_object();
		json_object_object_add(a, "type", json_object_new_string("hubport"));
		json_object_object_add(a, "id", json_object_new_string(NET_UP_PORT_ID));
		json_object_object_add(a, "hubid", json_object_new_int(0));
		json_object_object_add(a, "netdev", json_object_new_string(NET_UP_STREAM_ID));
		r = qmp_execute(q, "netdev_add", a, 5000, NULL, &err);
	}
	l->joins++;
	if (r < 0) {
		logf_(log, "net: joining the link to '%s' failed: %s", l->peer, err.msg);
		hutch_error_clear(&err);
		set_state(l, LINK_DOWN);
		l->retry_at = now + RETRY_MAX_MS;
		return;
	}
	set_state(l, LINK_CONNECTING);
	l->retry_at = now + JOIN_WAIT_MS;
}

void mon_net_start(struct mon_net *n, struct qmp *q, void (*log)(const char *line))
{
	if (n->has_up && q) {
		join(&n->links[0], q, now_ms(), log);
		logf_(log, "net: joining the link to netvm '%s' (%s)", n->links[0].peer, n->links[0].sock);
	}
}

static struct mon_link *by_netdev(struct mon_net *n, const char *id)
{
	for (size_t i = 0; id && i < n->n; i++)
		if (!strcmp(n->links[i].netdev, id))
			return &n->links[i];
	return NULL;
}

bool mon_net_event(struct mon_net *n, struct qmp *q, const char *event, json_object *data,
		   void (*log)(const char *line))
{
	bool up = !strcmp(event, "NETDEV_STREAM_CONNECTED");
	if (!up && strcmp(event, "NETDEV_STREAM_DISCONNECTED"))
		return false;
	json_object *v;
	const char *id = data && json_object_object_get_ex(data, "netdev-id", &v) ? json_object_get_string(v) : NULL;
	struct mon_link *l = by_netdev(n, id);
	if (!l)
		return true;
	bool client_side = n->has_up && l == &n->links[0];
	logf_(log, "net: link %s '%s' %s", client_side ? "to netvm" : "from client", l->peer, up ? "up" : "down");
	set_state(l, up ? LINK_UP : LINK_DOWN);
	/* the client side heals itself: soon, then every RETRY_MAX_MS until the netvm is back */
	l->retry_at = client_side && !up ? now_ms() + RETRY_MIN_MS : 0;
	(void)q;
	return true;
}

static uint64_t link_deadline(const struct mon_net *n)
{
	if (!n->has_up || !n->links[0].retry_at || n->links[0].state == LINK_UP)
		return UINT64_MAX;
	return n->links[0].retry_at;
}

uint64_t mon_net_deadline(const struct mon_net *n)
{
	uint64_t dl = link_deadline(n);
	if (n->guest == NETCONF_PENDING && n->asked_at + MON_NETCONF_ANSWER_MS < dl)
		dl = n->asked_at + MON_NETCONF_ANSWER_MS;
	return dl;
}

bool mon_net_tick(struct mon_net *n, struct qmp *q, uint64_t now, void (*log)(const char *line))
{
	bool expired = false;
	if (n->guest == NETCONF_PENDING && now >= n->asked_at + MON_NETCONF_ANSWER_MS) {
		n->guest = NETCONF_NO_ANSWER;
		snprintf(n->guest_why, sizeof(n->guest_why), "the agent did not answer within %d s (an older agent?)",
			 MON_NETCONF_ANSWER_MS / 1000);
		expired = true;
	}
	if (!q || now < link_deadline(n))
		return expired;
	struct mon_link *l = &n->links[0];
	if (l->state == LINK_CONNECTING && l->joins % 20 == 0)
		logf_(log, "net: netvm '%s' does not answer yet; still trying", l->peer);
	join(l, q, now, log);
	return expired;
}

bool mon_net_request(struct mon_net *n, struct proto_buf *b, uint64_t now)
{
	if (!n->words)
		return false;
	proto_encode_netconf(b, n->words);
	n->guest = NETCONF_PENDING;
	n->guest_why[0] = 0;
	n->asked_at = now;
	return true;
}

int mon_net_answer(struct mon_net *n, const struct proto_frame *f)
{
	struct proto_netconf untrusted_nc;
	if (proto_decode_netconf(f, &untrusted_nc) < 0)
		return -1;
	if (!untrusted_nc.answer) {
		proto_netconf_free(&untrusted_nc);
		return -1;
	}
	if (n->guest != NETCONF_NONE) {
		n->guest = untrusted_nc.err ? NETCONF_FAILED : NETCONF_DONE;
		/* guest text: printable ASCII only */
		size_t k = 0;
		for (const char *p = untrusted_nc.msg; untrusted_nc.err && p && *p && k + 1 < sizeof(n->guest_why); p++)
			n->guest_why[k++] = (*p >= 32 && *p < 127) ? *p : '?';
		n->guest_why[k] = 0;
		if (untrusted_nc.err && !k)
			snprintf(n->guest_why, sizeof(n->guest_why), "error %d", (int)untrusted_nc.err);
	}
	proto_netconf_free(&untrusted_nc);
	return 0;
}

bool mon_net_settled(const struct mon_net *n)
{
	return !n->words || n->guest == NETCONF_DONE || n->guest == NETCONF_FAILED || n->guest == NETCONF_NO_ANSWER;
}

char *mon_net_problem(const struct mon_net *n)
{
	if (n->guest == NETCONF_FAILED || n->guest == NETCONF_NO_ANSWER)
		return xasprintf("the guest did not set up its netvm links: %s", n->guest_why);
	return xstrdup("");
}

json_object *mon_net_json(const struct mon_net *n)
{
	json_object *o = json_object_new_object(), *arr = json_object_new_array();
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	for (size_t i = 0; i < n->n; i++) {
		const struct mon_link *l = &n->links[i];
		char a[16], b[16];
		json_object *e = json_object_new_object();
		json_object_object_add(e, "peer", json_object_new_string(l->peer));
		json_object_object_add(e, "role", json_object_new_string(n->has_up && i == 0 ? "client" : "netvm"));
		json_object_object_add(e, "addr", json_object_new_string(net_addr_str(l->addr, a)));
		json_object_object_add(e, "peer_addr", json_object_new_string(net_addr_str(l->peer_addr, b)));
		json_object_object_add(e, "state", json_object_new_string(state_names[l->state]));
		json_object_object_add(e, "since", json_object_new_int64((int64_t)l->since));
		json_object_object_add(e, "joins", json_object_new_int64(l->joins));
		json_object_array_add(arr, e);
	}
	json_object_object_add(o, "links", arr);
	json_object_object_add(o, "guest", json_object_new_string(netconf_names[n->guest]));
	if (n->guest_why[0])
		json_object_object_add(o, "guest_error", json_object_new_string(n->guest_why));
	return o;
}
