/* The monitor's side of the agent channel: frames from the agent, HELLO, liveness (pings, gone,
 * unresponsive, broken) and what happens to sessions when the agent goes. */
#include "monitor_internal.h"
#include "monitor_notify.h"

/* ---- agent liveness ---- */

void agent_set_state(struct mon *m, enum agent_state st, const char *why)
{
	if (m->agent_state != st)
		mon_log(m, "agent %s -> %s: %s", agent_state_names[m->agent_state], agent_state_names[st], why);
	m->agent_state = st;
	m->agent_since = now_real_s();
	snprintf(m->agent_why, sizeof(m->agent_why), "%s", why);
}

/* What to try when the agent cannot take a session: over ssh for cloud VMs (the agent is a systemd
 * service there); micro's agent is PID 1, so only the console log can tell more. */
static void agent_hint(struct mon *m, char *buf, size_t len)
{
	if (m->agent_state == AGENT_UNRESPONSIVE && m->paused)
		snprintf(buf, len, "the VM is paused: resume it (QMP 'cont')");
	else if (m->vm.spec->source == SOURCE_IMAGE)
		snprintf(buf, len, "%srestart it with 'hutch ssh %s -- sudo systemctl restart hutch-agent'",
			 m->agent_state == AGENT_GONE ? "" : "try again in a moment, or ", m->name);
	else
		snprintf(buf, len, "%ssee 'hutch logs %s'",
			 m->agent_state == AGENT_UNRESPONSIVE || m->agent_state == AGENT_WAITING
				 ? "try again in a moment, or "
				 : "",
			 m->name);
}

/* A new session cannot start: say the agent's state, since when and why, and what to try. */
void session_refuse(struct mon *m, struct client *c, uint32_t cl_chan)
{
	char msg[600], hint[200];
	if (m->stop_step != STOP_NONE) {
		snprintf(msg, sizeof(msg), "the guest agent in '%s' is stopping: the VM is shutting down", m->name);
	} else {
		agent_hint(m, hint, sizeof(hint));
		int64_t ago = now_real_s() - m->agent_since;
		snprintf(msg, sizeof(msg), "the guest agent in '%s' is %s (for %lld s: %s)%s; %s", m->name,
			 agent_state_names[m->agent_state], (long long)(ago > 0 ? ago : 0), m->agent_why,
			 m->agent_state == AGENT_BROKEN ? ", the VM is agent-less until a new agent starts" : "", hint);
	}
	client_end_session(c, cl_chan, msg, EXIT_FAILED, EHOSTDOWN);
}

/* An open session whose agent went away or stopped answering ends now: its result is unknown. */
static void session_lost(struct mon *m, struct channel *ch, const char *what)
{
	char msg[600];
	snprintf(msg, sizeof(msg), "the guest agent in '%s' %s while '%s' was running; its result is unknown", m->name,
		 what, ch->prog);
	client_end_session(ch->cl, ch->cl_chan, msg, EXIT_LOST, ECONNRESET);
}

void agent_ping(struct mon *m)
{
	struct proto_buf b = {0};
	proto_put_u64(&b, ++m->ping_token);
	agent_send(m, MSG_PING, 0, b.data, b.len);
	proto_buf_free(&b);
	m->ping_sent = m->ping_last = now_ms();
}

/* The agent answered: the EXECs that waited for it go out, each followed by what its client sent. */
void agent_release_held(struct mon *m)
{
	for (size_t i = 0; i < MAX_CHANNELS; i++) {
		struct channel *ch = m->chans[i];
		if (!ch || !ch->holding)
			continue;
		outbuf_compact(&m->agent_out);
		proto_put_bytes(&m->agent_out.b, ch->held.data, ch->held.len);
		m->held_bytes -= ch->held.len;
		proto_buf_free(&ch->held);
		ch->holding = false;
	}
}

/* A fresh connection to QEMU's agent chardev. What was queued for the old agent goes with the old
 * connection, so none of it reaches a new one; an agent that is running sees the host reconnect
 * and says HELLO again. */
void agent_reconnect(struct mon *m)
{
	if (m->agent_fd >= 0)
		close(m->agent_fd);
	m->agent_fd = -1;
	proto_reader_free(&m->agent_rd);
	proto_buf_free(&m->agent_out.b);
	m->agent_out = (struct outbuf){0};
	m->ping_sent = 0;
	_cleanup_free_ char *path = xasprintf("%s/agent.sock", m->run_dir);
	struct hutch_error err = {0};
	int fd = unix_connect(path, &err);
	if (fd < 0) {
		mon_log(m, "cannot reconnect to the agent port: %s", err.msg);
		hutch_error_clear(&err);
		return;
	}
	fd_set_nonblock(fd, true);
	m->agent_fd = fd;
}

/* The guest closed the agent port: the agent exited, was stopped or restarted. Its sessions are
 * over (their programs died with it, or their result can never reach us). */
void agent_gone(struct mon *m, const char *why)
{
	agent_set_state(m, AGENT_GONE, why);
	for (size_t i = 0; i < MAX_CHANNELS; i++) {
		struct channel *ch = m->chans[i];
		if (!ch)
			continue;
		if (ch->cl && ch->holding)
			session_refuse(m, ch->cl, ch->cl_chan);
		else if (ch->cl)
			session_lost(m, ch, "went away");
		chan_free(m, ch);
	}
	agent_reconnect(m);
}

/* The port is open but the agent does not answer (stopped, a frozen guest, the VM paused). Open
 * sessions end with an error; their programs may run on, so they are hung up and drained as
 * orphans once the agent reads again. Sessions that were waiting to start are refused. */
void agent_unresponsive(struct mon *m, const char *why)
{
	agent_set_state(m, AGENT_UNRESPONSIVE, why);
	m->ping_sent = 0;
	char what[200];
	snprintf(what, sizeof(what), "stopped answering (%s)", why);
	for (size_t i = 0; i < MAX_CHANNELS; i++) {
		struct channel *ch = m->chans[i];
		if (!ch)
			continue;
		if (ch->holding) {
			if (ch->cl)
				session_refuse(m, ch->cl, ch->cl_chan);
			chan_free(m, ch);
			continue;
		}
		if (!ch->cl)
			continue;
		session_lost(m, ch, what);
		chan_hangup(m, ch);
	}
}

/* Our HELLO to the agent: the answer to its HELLO (until it has one, it drops what we send, which
 * may have been meant for an earlier agent), or with PROTO_HELLO_QUERY a request to say HELLO again.
 * The query goes out before any HELLO, so it bypasses agent_send. */
void agent_hello_ack(struct mon *m, uint32_t caps)
{
	if (m->agent_fd < 0)
		return;
	struct proto_buf b = {0};
	proto_encode_hello(&b, PROTO_VERSION, caps, "");
	outbuf_frame(&m->agent_out, MSG_HELLO, 0, b.data, b.len);
	proto_buf_free(&b);
	if (caps & PROTO_HELLO_QUERY)
		return;
	if (m->autofwd.on) /* report the listeners, now and as they change */
		outbuf_frame(&m->agent_out, MSG_LISTENERS, 0, NULL, 0);
	if (mon_notify_wanted(m->vm.spec)) /* forward the guest's notifications */
		outbuf_frame(&m->agent_out, MSG_NOTIFY, 0, NULL, 0);
	/* the agent (re)mounts the shares after our answer; start waits (bounded) for its word */
	for (size_t i = 0; mon_shares_request(&m->shares, i, &b, now_ms()); i++) {
		outbuf_frame(&m->agent_out, MSG_MOUNT, 0, b.data, b.len);
		proto_buf_free(&b);
	}
	/* the links (an image guest sets them up now; micro did at boot and answers how it went) */
	if (mon_net_request(&m->net, &b, now_ms())) {
		outbuf_frame(&m->agent_out, MSG_NETCONF, 0, b.data, b.len);
		proto_buf_free(&b);
	}
}

/* ---- agent frames ---- */

void agent_broken(struct mon *m, const char *why)
{
	mon_log(m, "agent protocol error: %s; closing the agent channel", why);
	agent_set_state(m, AGENT_BROKEN, why);
	if (m->agent_fd >= 0)
		close(m->agent_fd);
	m->agent_fd = -1;
	for (size_t i = 0; i < MAX_CHANNELS; i++) {
		struct channel *ch = m->chans[i];
		if (!ch)
			continue;
		if (ch->cl)
			client_end_session(ch->cl, ch->cl_chan,
					   "the guest agent sent a malformed message; "
					   "the VM is now agent-less (see the monitor log)",
					   EXIT_FAILED, EPROTO);
		chan_free(m, ch);
	}
	if (!m->boot_reported) {
		char msg[256];
		snprintf(msg, sizeof(msg), "the guest agent sent a malformed message (%s): see 'hutch logs %s'", why,
			 m->name);
		notify_error(m, msg);
		begin_stop(m, true, 5000, "the agent failed during boot");
	}
}

/* A clone wakes up as its template: a fresh RNG, clock, hostname and machine-id before anything
 * runs (frames reach the agent in order). */
static void clone_identity(struct mon *m)
{
	struct proto_buf b = {0};
	warm_identity_encode(&b, m->name);
	agent_send(m, MSG_IDENTITY, 0, b.data, b.len);
	memset(b.data, 0, b.len);
	proto_buf_free(&b);
}

static void handle_agent_frame(struct mon *m, const struct proto_frame *f)
{
	m->agent_heard = now_ms();
	if (f->type == MSG_HELLO) {
		struct proto_hello h;
		if (proto_decode_hello(f, &h) < 0)
			return agent_broken(m, "malformed HELLO");
		if (h.version != PROTO_VERSION) {
			mon_log(m, "agent speaks protocol %u, we speak %u", h.version, PROTO_VERSION);
			proto_hello_free(&h);
			return agent_broken(m, "protocol version mismatch");
		}
		/* untrusted: only printable characters of the release are kept */
		size_t k = 0;
		for (const char *p = h.kernel_release; *p && k + 1 < sizeof(m->kernel_release); p++)
			if (*p > 32 && *p < 127)
				m->kernel_release[k++] = *p;
		m->kernel_release[k] = 0;
		proto_hello_free(&h);
		if (m->agent_state == AGENT_READY)
			return agent_hello_ack(m, 0); /* the same agent again: it missed our answer */
		/* A new agent is a new start: nothing of an earlier one is left (agent_gone), and channel
		 * ids keep counting up, so none is reused across agent lifetimes. */
		m->query_at = 0;
		m->ping_sent = 0;
		agent_set_state(m, AGENT_READY, m->t_hello ? "a new agent said HELLO" : "said HELLO");
		bool first = !m->t_hello;
		if (first) {
			m->t_hello = now_ms();
			m->last_activity = m->t_hello; /* the idle clock starts when the guest is up */
			mon_log(m, "agent ready (kernel %s) after %llu ms", m->kernel_release,
				(unsigned long long)(m->t_hello - m->t_start));
			notify_ready(m);
		}
		events_append(m->st, m->name, "qemu", "agent-ready", first ? "hello" : "hello-again",
			      m->kernel_release);
		agent_hello_ack(m, 0);
		if (first && warm_clone_restored(m->warm))
			clone_identity(m);
		return;
	}
	if (m->agent_state == AGENT_UNRESPONSIVE) {
		m->ping_sent = 0;
		agent_set_state(m, AGENT_READY, "answered again");
	}
	if (m->agent_state != AGENT_READY)
		return agent_broken(m, "message before HELLO");
	switch (f->type) {
	case MSG_PONG:
		if (f->channel == 0) {
			struct proto_cursor c;
			proto_cursor_init(&c, f->payload, f->len);
			uint64_t token = proto_get_u64(&c);
			if (c.ok && m->ping_sent && token == m->ping_token) {
				m->ping_sent = 0;
				agent_release_held(m);
			}
			return;
		}
		break;
	case MSG_ERROR:
		if (f->channel == 0)
			return;
		break;
	case MSG_MOUNT:
		if (mon_shares_answer(&m->shares, f) < 0)
			return agent_broken(m, "malformed MOUNT answer");
		notify_ready(m); /* start waited for the answers */
		return;
	case MSG_NETCONF:
		if (mon_net_answer(&m->net, f) < 0)
			return agent_broken(m, "malformed NETCONF answer");
		if (m->net.guest == NETCONF_FAILED)
			mon_log(m, "net: the guest did not set up its links: %s", m->net.guest_why);
		notify_ready(m);
		return;
	case MSG_ACTIVITY:
		m->last_activity = now_ms();
		return;
	case MSG_LISTENERS:
		if (autofwd_report(&m->autofwd, m->qmp, f->payload, f->len, m->forwards, net_log) < 0)
			return agent_broken(m, "malformed LISTENERS report");
		return;
	case MSG_NOTIFY:
		if (mon_notify_frame(m->name, m->vm.spec, f->payload, f->len, net_log) < 0)
			return agent_broken(m, "malformed NOTIFY");
		return;
	case MSG_STDOUT:
	case MSG_STDERR:
	case MSG_EXIT:
	case MSG_WINDOW:
		break;
	default:
		return agent_broken(m, "unexpected message type");
	}
	struct channel *ch = chan_by_id(m, f->channel);
	if (!ch)
		return; /* a channel we already closed */
	m->last_activity = now_ms();
	if (f->type == MSG_STDOUT || f->type == MSG_STDERR) {
		/* The window is what keeps a flooding guest from filling our memory: enforce it. */
		if (f->len > ch->credit)
			return agent_broken(m, "exceeded the flow-control window");
		ch->credit -= f->len;
	}
	if (f->type == MSG_EXIT) {
		struct proto_exit ex;
		if (proto_decode_exit(f, &ex) < 0 || ex.kind == EXIT_LOST)
			return agent_broken(m, "malformed EXIT");
	}
	if (ch->cl)
		client_send(ch->cl, f->type, ch->cl_chan, f->payload, f->len);
	else if (f->type == MSG_STDOUT || f->type == MSG_STDERR) {
		/* Nobody reads an orphaned session any more: keep its credit flowing until it exits. */
		ch->credit += f->len;
		struct proto_buf b = {0};
		proto_put_u32(&b, f->len);
		agent_send(m, MSG_WINDOW, ch->id, b.data, b.len);
		proto_buf_free(&b);
	}
	if (f->type == MSG_EXIT) {
		bool app = ch->app;
		chan_free(m, ch);
		if (app && m->apps_live == 0 && m->vm.spec->on_app_exit && m->stop_step == STOP_NONE)
			begin_stop(m, false, 20000, "the last app exited (auto_shutdown.on_app_exit)");
	}
}

void agent_readable(struct mon *m)
{
	long n = proto_reader_read_fd(&m->agent_rd, m->agent_fd);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		if (n < 0 && errno == EMSGSIZE)
			return agent_broken(m, "oversized frame");
		mon_log(m, "agent channel closed by qemu");
		close(m->agent_fd);
		m->agent_fd = -1;
		if (m->agent_state != AGENT_BROKEN)
			agent_set_state(m, AGENT_GONE, "qemu closed the agent channel");
		return;
	}
	struct proto_frame f;
	int k;
	while (m->agent_fd >= 0 && (k = proto_reader_next(&m->agent_rd, &f)) == 1)
		handle_agent_frame(m, &f);
	if (m->agent_fd >= 0 && k < 0)
		agent_broken(m, "malformed frame header (bad type or length over 1 MiB)");
}
