/* The monitor's CLI side: control requests (status, stop, ports, snapshots, ...), exec sessions
 * and their frames, and accepting clients. */
#include "monitor_internal.h"

/* ---- client requests ---- */

static json_object *status_json(struct mon *m)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	json_object_object_add(o, "running", json_object_new_boolean(!m->qemu_exited));
	json_object_object_add(o, "kvm", json_object_new_boolean(m->plan.accel->kvm));
	json_object_object_add(o, "uptime_ms", json_object_new_int64((int64_t)(now_ms() - m->t_start)));
	json_object_object_add(o, "agent", json_object_new_string(agent_state_names[m->agent_state]));
	json_object_object_add(o, "agent_since", json_object_new_int64(m->agent_since));
	json_object_object_add(o, "agent_why", json_object_new_string(m->agent_why));
	json_object_object_add(o, "paused", json_object_new_boolean(m->paused));
	json_object_object_add(o, "sessions", json_object_new_int(count_sessions(m)));
	json_object_object_add(o, "pid", json_object_new_int((int)getpid()));
	json_object_object_add(o, "shares", mon_shares_json(&m->shares));
	json_object_object_add(o, "kernel_release", json_object_new_string(m->kernel_release));
	warm_clone_json(m->warm, m->t_hello ? m->t_hello - m->t_spawn : 0, o);
	return o;
}

static void reply_error(struct client *c, const char *msg)
{
	json_object *e = json_object_new_object();
	json_object_object_add(e, "ok", json_object_new_boolean(0));
	json_object_object_add(e, "error", json_object_new_string(msg));
	client_send_json(c, e);
}

static json_object *ports_json(struct mon *m)
{
	json_object *o = json_object_new_object(), *arr = json_object_new_array(), *orig = json_object_new_array();
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	for (size_t i = 0; m->forwards && m->forwards[i]; i++) {
		json_object_array_add(arr, json_object_new_string(m->forwards[i]));
		json_object_array_add(orig, json_object_new_string("static"));
	}
	autofwd_list(&m->autofwd, arr, orig);
	json_object_object_add(o, "forwards", arr);
	json_object_object_add(o, "origins", orig);
	return o;
}

/* Is f's host port (and protocol) already among the forwards? */
static bool forward_listed(char *const *forwards, const struct forward *f)
{
	for (size_t i = 0; forwards && forwards[i]; i++) {
		struct forward g;
		if (forward_parse(forwards[i], &g) == 0 && g.host == f->host && g.udp == f->udp)
			return true;
	}
	return false;
}

/* forward_pick_free, and for host port 0 one that none of the VM's forwards has: a picked port is
 * free but not reserved, so two picks could otherwise draw the same one. */
int pick_forward(struct mon *m, struct forward *f, struct hutch_error *err)
{
	bool any = f->host == 0;
	for (int tries = 0; tries < 8; tries++) {
		if (any)
			f->host = 0;
		int r = forward_pick_free(f, err);
		if (r < 0 || !any || !forward_listed(m->forwards, f))
			return r;
	}
	return hutch_error_set(err, EADDRINUSE, "cannot find a free %s port on the host", f->udp ? "udp" : "tcp");
}

static void handle_port(struct mon *m, struct client *c, const char *op, json_object *req)
{
	if (!strcmp(op, "port-ls"))
		return client_send_json(c, ports_json(m));
	json_object *v;
	const char *spec = json_object_object_get_ex(req, "spec", &v) ? json_object_get_string(v) : NULL;
	struct forward f;
	if (!spec || forward_parse(spec, &f) < 0)
		return reply_error(c, "invalid forward: expected HOST:GUEST or HOST:GUEST/tcp|udp with ports 1-65535 "
				      "(HOST 0: any free port, for add)");
	if (m->vm.spec->net_mode != NET_USER)
		return reply_error(c, "the VM has no user-mode network (network.mode is not 'user')");
	struct hutch_error err = {0};
	if (f.host == 0 && !strcmp(op, "port-add") && pick_forward(m, &f, &err) < 0) {
		reply_error(c, err.msg);
		hutch_error_clear(&err);
		return;
	}
	_cleanup_free_ char *key = xasprintf("%u:%u/%s", f.host, f.guest, f.udp ? "udp" : "tcp");
	size_t idx = SIZE_MAX;
	for (size_t i = 0; m->forwards && m->forwards[i]; i++) {
		struct forward g;
		if (forward_parse(m->forwards[i], &g) == 0 && g.host == f.host && g.udp == f.udp)
			idx = i;
	}
	if (!strcmp(op, "port-add")) {
		if (idx != SIZE_MAX)
			return reply_error(c, "that host port is already forwarded");
		_cleanup_free_ char *rule = forward_rule(&f);
		_cleanup_free_ char *line = xasprintf("hostfwd_add net0 %s", rule);
		if (forward_check_free(&f, &err) < 0 || qmp_hmp(m->qmp, line, HMP_MS, &err) < 0) {
			reply_error(c, err.msg);
			hutch_error_clear(&err);
			return;
		}
		m->forwards = strv_push(m->forwards, TAKE_PTR(key));
	} else {
		if (idx == SIZE_MAX)
			return reply_error(c, "no such forward");
		_cleanup_free_ char *line =
			xasprintf("hostfwd_remove net0 %s:127.0.0.1:%u", f.udp ? "udp" : "tcp", f.host);
		if (qmp_hmp(m->qmp, line, HMP_MS, &err) < 0) {
			reply_error(c, err.msg);
			hutch_error_clear(&err);
			return;
		}
		free(m->forwards[idx]);
		size_t n = strv_len(m->forwards);
		memmove(&m->forwards[idx], &m->forwards[idx + 1], (n - idx) * sizeof(char *));
	}
	mon_log(m, "%s %s", op, key);
	client_send_json(c, ports_json(m));
}

/* snapshot-save, -restore, -rm (snapshot.h). A restored VM's agent is the one of the snapshot's
 * moment: its sessions are over, and a fresh connection makes it say HELLO again. */
static void handle_snapshot(struct mon *m, struct client *c, const char *op, json_object *req)
{
	json_object *v;
	const char *tag = json_object_object_get_ex(req, "tag", &v) ? json_object_get_string(v) : NULL;
	struct hutch_error err = {0};
	if (!m->qmp)
		return reply_error(c, "QMP is not connected");
	if (snapshot_qmp(m->qmp, m->vm_dir, m->vm.spec, op, tag, &err) < 0) {
		reply_error(c, err.msg);
		hutch_error_clear(&err);
		return;
	}
	mon_log(m, "%s %s", op, tag);
	if (!strcmp(op, "snapshot-restore"))
		agent_gone(m, "the VM was restored from a snapshot");
	json_object *o = json_object_new_object();
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	client_send_json(c, o);
}

static void handle_ctl(struct mon *m, struct client *c, const struct proto_frame *f)
{
	json_tokener *tok = json_tokener_new();
	json_object *req = json_tokener_parse_ex(tok, (const char *)f->payload, (int)f->len);
	json_tokener_free(tok);
	json_object *op = NULL;
	if (!req || !json_object_object_get_ex(req, "op", &op) || !json_object_is_type(op, json_type_string)) {
		json_object_put(req);
		json_object *e = json_object_new_object();
		json_object_object_add(e, "ok", json_object_new_boolean(0));
		json_object_object_add(e, "error", json_object_new_string("malformed request"));
		client_send_json(c, e);
		return;
	}
	const char *o = json_object_get_string(op);
	json_object *v;
	if (!strcmp(o, "status")) {
		client_send_json(c, status_json(m));
	} else if (!strcmp(o, "stop")) {
		bool force = json_object_object_get_ex(req, "force", &v) && json_object_get_boolean(v);
		uint64_t t = json_object_object_get_ex(req, "timeout_ms", &v) ? (uint64_t)json_object_get_int64(v) : 0;
		c->wants_stop_reply = true;
		begin_stop(m, force, t, "requested by the CLI");
	} else if (!strncmp(o, "port-", 5)) {
		handle_port(m, c, o, req);
	} else if (!strncmp(o, "snapshot-", 9)) {
		handle_snapshot(m, c, o, req);
	} else if ((v = monitor_desktop_ctl(m->qmp, m->run_dir, o, req))) {
		client_send_json(c, v);
	} else if (!strcmp(o, "net-ls")) {
		client_send_json(c, mon_net_json(&m->net));
	} else if (!strcmp(o, "balloon")) {
		client_send_json(c, mon_balloon_request(&m->balloon, m->qmp, req));
	} else if (!strcmp(o, "hello")) {
		c->is_run = json_object_object_get_ex(req, "run", &v) && json_object_get_boolean(v);
		if (c->is_run)
			m->run_client_seen = true;
		client_send_json(c, status_json(m));
	} else {
		json_object *e = json_object_new_object();
		json_object_object_add(e, "ok", json_object_new_boolean(0));
		json_object_object_add(e, "error", json_object_new_string("unknown request"));
		client_send_json(c, e);
	}
	json_object_put(req);
}

static void handle_client_exec(struct mon *m, struct client *c, const struct proto_frame *f)
{
	if (f->channel == 0 || chan_by_client(m, c, f->channel)) {
		client_send_error(c, f->channel, "bad or duplicate channel");
		return;
	}
	if (m->agent_state != AGENT_READY || m->stop_step != STOP_NONE)
		return session_refuse(m, c, f->channel);
	size_t slot = MAX_CHANNELS;
	for (size_t i = 0; i < MAX_CHANNELS && slot == MAX_CHANNELS; i++)
		if (!m->chans[i])
			slot = i;
	/* An agent that has been quiet is asked first: the EXEC waits for its PONG (bounded). */
	bool check = m->ping_sent || now_ms() >= m->agent_heard + AGENT_QUIET_MS;
	struct proto_exec e;
	const char *why = slot == MAX_CHANNELS			       ? "too many sessions"
			  : check && m->held_bytes + f->len > HELD_MAX ? "too many sessions are waiting for the agent"
			  : proto_decode_exec(f, &e) < 0	       ? "malformed EXEC"
								       : NULL;
	if (why)
		return client_end_session(c, f->channel, why, EXIT_FAILED, EINVAL);
	struct channel *ch = xcalloc(1, sizeof(*ch));
	const char *a0 = e.argv && e.argv[0] && e.argv[0][0] ? e.argv[0] : "login shell";
	const char *base = strrchr(a0, '/');
	snprintf(ch->prog, sizeof(ch->prog), "%s", base && base[1] ? base + 1 : a0);
	for (char *p = ch->prog; *p; p++)
		if (*p < 32 || *p > 126 || *p == '\'')
			*p = '?';
	ch->id = ++m->next_chan ? m->next_chan : ++m->next_chan;
	ch->cl = c;
	ch->cl_chan = f->channel;
	ch->credit = PROTO_WINDOW_INIT;
	ch->app = (e.flags & EXEC_APP) != 0;
	if (ch->app) {
		m->apps_live++;
		m->apps_started++;
	}
	proto_exec_free(&e);
	m->chans[slot] = ch;
	if (!check)
		return agent_send(m, MSG_EXEC, ch->id, f->payload, f->len);
	ch->holding = true;
	chan_hold(m, ch, MSG_EXEC, f->payload, f->len);
	if (!m->ping_sent)
		agent_ping(m);
}

static void handle_client_frame(struct mon *m, struct client *c, const struct proto_frame *f)
{
	/* Sessions are activity; a `list` or `inspect` asking for status is not. */
	if (f->type != MSG_CTL)
		m->last_activity = m->client_session_at = now_ms();
	if (f->type == MSG_CTL)
		return handle_ctl(m, c, f);
	if (f->type == MSG_EXEC)
		return handle_client_exec(m, c, f);
	switch (f->type) {
	case MSG_STDIN:
	case MSG_STDIN_EOF:
	case MSG_SIGNAL:
	case MSG_WINSIZE:
	case MSG_WINDOW: {
		struct channel *ch = chan_by_client(m, c, f->channel);
		if (!ch)
			return;
		if (f->type == MSG_WINDOW) {
			uint32_t v;
			if (proto_decode_u32(f, &v) < 0 || ch->credit + v > 64ull * PROTO_WINDOW_INIT) {
				c->closing = true;
				return;
			}
			ch->credit += v;
		}
		if (ch->holding) {
			if (m->held_bytes + f->len + PROTO_HDR_SIZE > HELD_MAX)
				c->closing = true;
			else
				chan_hold(m, ch, f->type, f->payload, f->len);
			return;
		}
		agent_send(m, f->type, ch->id, f->payload, f->len);
		return;
	}
	case MSG_PING:
		client_send(c, MSG_PONG, f->channel, f->payload, f->len);
		return;
	default:
		c->closing = true;
		return;
	}
}

void client_readable(struct mon *m, struct client *c)
{
	long n = proto_reader_read_fd(&c->rd, c->fd);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		c->closing = true;
		return;
	}
	struct proto_frame f;
	int k;
	while (!c->closing && (k = proto_reader_next(&c->rd, &f)) == 1)
		handle_client_frame(m, c, &f);
	if (k < 0)
		c->closing = true;
}

void accept_clients(struct mon *m)
{
	for (;;) {
		int fd = accept4(m->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return;
		size_t slot = MAX_CLIENTS;
		for (size_t i = 0; i < MAX_CLIENTS && slot == MAX_CLIENTS; i++)
			if (!m->clients[i])
				slot = i;
		if (slot == MAX_CLIENTS) {
			close(fd);
			continue;
		}
		struct client *c = xcalloc(1, sizeof(*c));
		c->fd = fd;
		proto_reader_init(&c->rd);
		m->clients[slot] = c;
	}
}
