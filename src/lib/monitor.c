/* The monitor. One per running VM, a daemon re-executed from the hutch binary. It spawns QEMU as
 * its child (PR_SET_PDEATHSIG, so QEMU never outlives it), holds the VM's run lock for its whole
 * life, speaks QMP, and multiplexes CLI sessions onto the one agent channel. It keeps no session
 * state on disk. When QEMU exits it records why, cleans the runtime dir, and exits.
 *
 * Everything runs in one poll loop. All sockets are non-blocking with bounded output buffers. */
#include "monitor.h"
#include "failed.h"
#include "monitor_balloon.h"
#include "monitor_usb.h"
#include "autofwd.h"
#include "monitor_net.h"
#include "monitor_shares.h"
#include "monitor_desktop.h"
#include "unixsock.h"
#include "snapshot.h"
#include "swtpm.h"
#include "warm.h"

#include "proto.h"
#include "qemu.h"
#include "qmp.h"

#include <dirent.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include "monitor_internal.h"
#include "ready.h"

const char *const agent_state_names[] = {"waiting", "ready", "broken", "gone", "unresponsive"};

void mon_log(struct mon *m, const char *fmt, ...)
{
	(void)m;
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "[%llu] ", (unsigned long long)now_ms());
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

void net_log(const char *line) { mon_log(NULL, "%s", line); }

/* ---- output buffers ---- */

static int outbuf_flush(int fd, struct outbuf *o)
{
	while (o->off < o->b.len) {
		ssize_t n = send(fd, o->b.data + o->off, o->b.len - o->off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return -errno;
		}
		o->off += (size_t)n;
	}
	o->b.len = o->off = 0;
	return 0;
}

static size_t outbuf_pending(const struct outbuf *o) { return o->b.len - o->off; }

/* Before appending: once everything was sent, start again at the beginning of the buffer. */
void outbuf_compact(struct outbuf *o)
{
	if (o->off > 0 && o->off == o->b.len)
		o->b.len = o->off = 0;
}

void outbuf_frame(struct outbuf *o, uint8_t type, uint32_t chan, const void *p, size_t len)
{
	outbuf_compact(o);
	proto_frame_append(&o->b, type, chan, p, len);
}

/* ---- clients ---- */

void client_send(struct client *c, uint8_t type, uint32_t chan, const void *p, size_t len)
{
	if (c->closing)
		return;
	outbuf_frame(&c->out, type, chan, p, len);
	if (outbuf_pending(&c->out) > CLIENT_OUT_MAX)
		c->closing = true; /* a client that stopped reading loses its connection, not our memory */
}

void client_send_json(struct client *c, json_object *o)
{
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	client_send(c, MSG_CTL, 0, s, strlen(s));
	json_object_put(o);
}

void client_send_error(struct client *c, uint32_t chan, const char *msg)
{
	struct proto_buf b = {0};
	proto_put_str(&b, msg);
	client_send(c, MSG_ERROR, chan, b.data, b.len);
	proto_buf_free(&b);
}

/* A session ends without its program's status: the error, then an EXIT of that kind (errno code). */
void client_end_session(struct client *c, uint32_t chan, const char *msg, uint8_t kind, int code)
{
	client_send_error(c, chan, msg);
	struct proto_buf b = {0};
	proto_encode_exit(&b, kind, code);
	client_send(c, MSG_EXIT, chan, b.data, b.len);
	proto_buf_free(&b);
}

/* Only an agent that said HELLO gets anything: nothing meant for an old agent reaches a new one. */
void agent_send(struct mon *m, uint8_t type, uint32_t chan, const void *p, size_t len)
{
	if (m->agent_fd < 0 || (m->agent_state != AGENT_READY && m->agent_state != AGENT_UNRESPONSIVE))
		return;
	outbuf_frame(&m->agent_out, type, chan, p, len);
}

void chan_free(struct mon *m, struct channel *ch)
{
	for (size_t i = 0; i < MAX_CHANNELS; i++)
		if (m->chans[i] == ch)
			m->chans[i] = NULL;
	if (ch->app && m->apps_live > 0)
		m->apps_live--;
	m->held_bytes -= ch->held.len;
	proto_buf_free(&ch->held);
	free(ch);
}

/* A frame for the agent waits in the channel until the agent answers a ping (agent_release_held). */
void chan_hold(struct mon *m, struct channel *ch, uint8_t type, const void *p, size_t len)
{
	size_t before = ch->held.len;
	proto_frame_append(&ch->held, type, ch->id, p, len);
	m->held_bytes += ch->held.len - before;
}

/* The session has no client any more (it went, or was told the result is unknown): the guest
 * program is hung up, and what it still sends is drained. */
void chan_hangup(struct mon *m, struct channel *ch)
{
	struct proto_buf b = {0};
	proto_put_u32(&b, SIGHUP);
	agent_send(m, MSG_SIGNAL, ch->id, b.data, b.len);
	proto_buf_free(&b);
	ch->cl = NULL;
}

struct channel *chan_by_id(struct mon *m, uint32_t id)
{
	for (size_t i = 0; i < MAX_CHANNELS; i++)
		if (m->chans[i] && m->chans[i]->id == id)
			return m->chans[i];
	return NULL;
}

struct channel *chan_by_client(struct mon *m, struct client *c, uint32_t cl_chan)
{
	for (size_t i = 0; i < MAX_CHANNELS; i++)
		if (m->chans[i] && m->chans[i]->cl == c && m->chans[i]->cl_chan == cl_chan)
			return m->chans[i];
	return NULL;
}

int count_sessions(struct mon *m)
{
	int n = 0;
	for (size_t i = 0; i < MAX_CHANNELS; i++)
		n += m->chans[i] != NULL;
	return n;
}

static void client_free(struct mon *m, struct client *c)
{
	bool was_run = c->is_run, had_sessions = false;
	/* A client that vanished (Ctrl-C twice, killed) gets its guest processes hung up. */
	for (size_t i = 0; i < MAX_CHANNELS; i++) {
		struct channel *ch = m->chans[i];
		if (!ch || ch->cl != c)
			continue;
		had_sessions = true;
		if (ch->holding) {
			chan_free(m, ch); /* its EXEC never reached the agent */
			continue;
		}
		chan_hangup(m, ch);
	}
	for (size_t i = 0; i < MAX_CLIENTS; i++)
		if (m->clients[i] == c)
			m->clients[i] = NULL;
	close(c->fd);
	proto_reader_free(&c->rd);
	proto_buf_free(&c->out.b);
	free(c);
	if (had_sessions)
		m->client_session_at = now_ms();
	if (had_sessions || was_run)
		m->last_activity = now_ms();
	if (was_run && m->a->ephemeral && m->stop_step == STOP_NONE)
		begin_stop(m, false, 20000, "the disposable VM's client went away");
}

/* ---- QEMU ---- */

/* QEMU exited before QMP was up: how it ended and what it logged last. */
static int qemu_start_failed(struct mon *m, int st, const char *log_path, struct hutch_error *err)
{
	m->qemu_pid = 0;
	m->spawn_exited = true;
	m->spawn_status = st;
	_cleanup_free_ char *last = file_last_line(log_path, 300);
	hutch_error_clear(err);
	return hutch_error_set(err, EIO, "qemu exited at start with %s %d%s%s (see %s)",
			       WIFEXITED(st) ? "status" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
			       last ? ": " : "", last ? last : "", log_path);
}

/* When a disposable VM that no run client came for is stopped (EPHEMERAL_GRACE_MS). */
static uint64_t ephemeral_grace_end(const struct mon *m)
{
	uint64_t from = m->client_session_at > m->t_hello ? m->client_session_at : m->t_hello;
	return from + EPHEMERAL_GRACE_MS;
}

/* Whether pid exits within ms (reaped, status in *st). */
static bool reaped_within(pid_t pid, uint64_t ms, int *st)
{
	uint64_t end = now_ms() + ms;
	do {
		if (waitpid(pid, st, WNOHANG) == pid)
			return true;
		struct timespec ts = {0, 20 * 1000 * 1000};
		nanosleep(&ts, NULL);
	} while (now_ms() < end);
	return false;
}

static int spawn_swtpm(struct mon *m, struct hutch_error *err);

static int spawn_qemu(struct mon *m, struct hutch_error *err)
{
	_cleanup_free_ char *log_path = xasprintf("%s/qemu.log", m->vm_dir);
	struct qemu_proc q;
	m->spawn_exited = false;
	/* a TPM VM's swtpm: at start, and again for the cold boot after a clone's QEMU was discarded */
	int r = m->vm.spec->tpm && m->swtpm_pid <= 0 ? spawn_swtpm(m, err) : 0;
	if (r < 0)
		return r;
	r = qemu_spawn(m->plan.argv, m->run_dir, log_path, &q, err);
	if (r < 0)
		return r;
	pid_t pid = q.pid;
	int qfd = q.qmp_fd;
	m->qemu_pid = pid;
	m->agent_fd = q.agent_fd;
	fd_set_nonblock(m->agent_fd, true);
	uint64_t left = m->a->boot_timeout_ms ? m->a->boot_timeout_ms : 60000;
	if (left > 30000)
		left = 30000;
	/* Until the greeting arrives, watch QEMU too: one that dies at once must not look like a hang. */
	uint64_t deadline = now_ms() + left;
	int st;
	for (;;) {
		if (waitpid(pid, &st, WNOHANG) == pid) {
			close(qfd);
			return qemu_start_failed(m, st, log_path, err);
		}
		struct pollfd p = {.fd = qfd, .events = POLLIN};
		uint64_t t = now_ms();
		if (t >= deadline || poll(&p, 1, 50) > 0)
			break;
	}
	uint64_t t = now_ms();
	r = qmp_open(qfd, deadline > t ? deadline - t : 1, &m->qmp, err);
	/* A QEMU dying under the handshake closes its socket first: report the exit, not a QMP fault. */
	if (r < 0 && reaped_within(pid, 1000, &st))
		return qemu_start_failed(m, st, log_path, err);
	if (r < 0)
		return hutch_error_wrap(err, "qemu did not answer on QMP (see %s)", log_path);
	m->t_qmp = now_ms();
	return 0;
}

/* A clone's QEMU that will not be used: killed and reaped, with its QMP and agent connections, and
 * its swtpm with the TPM state the restore gave it (the cold boot gets a fresh one). */
static void qemu_discard(struct mon *m)
{
	if (m->qemu_pid > 0) {
		kill(m->qemu_pid, SIGKILL);
		waitpid(m->qemu_pid, NULL, 0);
		m->qemu_pid = 0;
	}
	if (m->swtpm_pid > 0) {
		kill(m->swtpm_pid, SIGKILL);
		waitpid(m->swtpm_pid, NULL, 0);
		m->swtpm_pid = 0;
	}
	if (m->vm.spec->tpm) {
		_cleanup_free_ char *state = xasprintf("%s/tpm", m->vm_dir);
		rm_rf(state);
	}
	qmp_close(m->qmp);
	m->qmp = NULL;
	if (m->agent_fd >= 0)
		close(m->agent_fd);
	m->agent_fd = -1;
}

/* A restored clone whose agent does not answer the HELLO query (WARM_HELLO_MS) boots cold on a
 * fresh QEMU instead of waiting out the boot timeout. Nothing but the start waits on it yet. */
static void clone_fallback(struct mon *m)
{
	if (warm_clone_abandon(m->warm, &m->plan, "did not answer after its restore") < 0)
		return;
	mon_log(m, "%s", warm_clone_warning(m->warm));
	m->t_restored = 0;
	qemu_discard(m);
	proto_reader_free(&m->agent_rd);
	proto_reader_init(&m->agent_rd);
	proto_buf_free(&m->agent_out.b);
	m->agent_out.off = 0;
	m->query_at = 0;
	m->t_spawn = now_ms();
	struct hutch_error err = {0};
	if (spawn_qemu(m, &err) < 0) {
		mon_log(m, "start failed: %s", err.msg);
		notify_error(m, err.msg);
		hutch_error_clear(&err);
		m->qemu_exited = true;
	}
}

static void describe_exit(struct mon *m)
{
	bool clean = WIFEXITED(m->qemu_status) && WEXITSTATUS(m->qemu_status) == 0;
	if (m->stop_method[0])
		snprintf(m->exit_reason, sizeof(m->exit_reason), "stopped (%s)", m->stop_method);
	else if (clean && !strcmp(m->shutdown_reason, "guest-reset"))
		/* -no-reboot: a reset ends QEMU; micro's kernel resets on panic (panic=-1) */
		snprintf(m->exit_reason, sizeof(m->exit_reason),
			 "the guest reset: a reboot or a kernel panic, see 'hutch logs %s'", m->name);
	else if (clean && !strcmp(m->shutdown_reason, "guest-panic"))
		snprintf(m->exit_reason, sizeof(m->exit_reason), "the guest kernel panicked, see 'hutch logs %s'",
			 m->name);
	else if (clean)
		snprintf(m->exit_reason, sizeof(m->exit_reason), "the guest powered off");
	else if (WIFEXITED(m->qemu_status))
		snprintf(m->exit_reason, sizeof(m->exit_reason), "qemu exited with status %d (see %s/qemu.log)",
			 WEXITSTATUS(m->qemu_status), m->vm_dir);
	else if (WIFSIGNALED(m->qemu_status))
		snprintf(m->exit_reason, sizeof(m->exit_reason), "qemu was killed by signal %d",
			 WTERMSIG(m->qemu_status));
}

/* ---- notify the starting CLI ---- */

static void notify(struct mon *m, json_object *o)
{
	if (m->a->notify_fd < 0 || m->boot_reported) {
		json_object_put(o);
		return;
	}
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	write_all(m->a->notify_fd, s, strlen(s));
	close(m->a->notify_fd);
	m->boot_reported = true;
	json_object_put(o);
}

void notify_error(struct mon *m, const char *msg)
{
	if (m->a->notify_fd < 0 || m->boot_reported)
		return;
	_cleanup_free_ char *text = m->a->ephemeral ? failed_keep_logs(m->st, m->name, msg) : xstrdup(msg);
	if (m->a->ephemeral)
		mon_log(m, "the disposable VM failed to start: %s", text);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "ok", json_object_new_boolean(0));
	json_object_object_add(o, "error", json_object_new_string(text));
	notify(m, o);
}

void notify_ready(struct mon *m)
{
	if (!mon_shares_settled(&m->shares) || !mon_net_settled(&m->net))
		return; /* again when the agent answered the MOUNTs and NETCONF, or gave no answer in time */
	json_object *o = json_object_new_object();
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	json_object_object_add(o, "spawn_ms", json_object_new_int64((int64_t)(m->t_spawn - m->t_start)));
	json_object_object_add(o, "qmp_ms", json_object_new_int64((int64_t)(m->t_qmp - m->t_start)));
	json_object_object_add(o, "hello_ms", json_object_new_int64((int64_t)(m->t_hello - m->t_start)));
	json_object_object_add(o, "kvm", json_object_new_boolean(m->plan.accel->kvm));
	json_object_object_add(o, "accel_why", json_object_new_string(m->plan.accel->why));
	_cleanup_free_ char *shares = mon_shares_problems(&m->shares);
	if (shares && *shares)
		json_object_object_add(o, "shares_problem", json_object_new_string(shares));
	_cleanup_free_ char *net = mon_net_problem(&m->net);
	if (*net)
		json_object_object_add(o, "net_problem", json_object_new_string(net));
	json_object_object_add(o, "kernel_release", json_object_new_string(m->kernel_release));
	warm_clone_json(m->warm, m->t_hello - m->t_spawn, o);
	notify(m, o);
}

/* ---- stop escalation ---- */

static void stop_advance(struct mon *m)
{
	uint64_t t = now_ms();
	uint64_t left = m->stop_begun + m->stop_total_ms > t ? m->stop_begun + m->stop_total_ms - t : 0;
	struct hutch_error err = {0};
	for (;;) {
		m->stop_step++;
		switch (m->stop_step) {
		case STOP_AGENT:
			if (m->agent_state != AGENT_READY)
				continue;
			agent_send(m, MSG_POWEROFF, 0, NULL, 0);
			m->stop_deadline = t + (left * 4 / 10 > 1000 ? left * 4 / 10 : 1000);
			snprintf(m->stop_method, sizeof(m->stop_method), "agent");
			return;
		case STOP_ACPI:
			if (!m->qmp || qmp_execute(m->qmp, "system_powerdown", NULL, 2000, NULL, &err) < 0) {
				hutch_error_clear(&err);
				continue;
			}
			/* micro has no ACPI daemon: the power button is only worth a moment there. Elsewhere
			 * it gets what is left of the timeout: all of it when the agent could not answer. */
			m->stop_deadline =
				t + (m->vm.spec->source == SOURCE_TEMPLATE ? 1000 : (left > 1000 ? left : 1000));
			snprintf(m->stop_method, sizeof(m->stop_method), "acpi");
			return;
		case STOP_QUIT:
			if (!m->qmp || qmp_execute(m->qmp, "quit", NULL, 2000, NULL, &err) < 0) {
				hutch_error_clear(&err);
				continue;
			}
			m->stop_deadline = t + 3000;
			snprintf(m->stop_method, sizeof(m->stop_method), "quit");
			return;
		case STOP_KILL:
			kill(m->qemu_pid, SIGKILL);
			m->stop_deadline = 0;
			snprintf(m->stop_method, sizeof(m->stop_method), "kill");
			return;
		case STOP_NONE:
		default:
			return;
		}
	}
}

void begin_stop(struct mon *m, bool force, uint64_t total_ms, const char *why)
{
	if (m->qemu_exited)
		return;
	if (m->stop_step != STOP_NONE && !force)
		return;
	mon_log(m, "stopping%s: %s", force ? " (forced)" : "", why);
	if (!m->stop_why[0])
		snprintf(m->stop_why, sizeof(m->stop_why), "%s", why);
	m->stop_begun = now_ms();
	m->stop_total_ms = total_ms ? total_ms : m->vm.spec->stop_timeout_s ? m->vm.spec->stop_timeout_s * 1000 : 30000;
	/* A restored clone has no disk and no shares: nothing in it outlives it, so it is not asked to
	 * power off first (a warm run --rm spent ~0.3 s on that). */
	if ((force || warm_clone_restored(m->warm)) && m->stop_step < STOP_ACPI)
		m->stop_step = STOP_ACPI; /* next is quit */
	stop_advance(m);
}

/* ---- lifecycle ---- */

/* The stopped (or crashed) event: why it stopped, as a token a script can match, and the sentence. */
static void event_exit(struct mon *m)
{
	static const struct {
		const char *in_why, *reason;
	} causes[] = {
		{"requested", "requested"},	    {"auto_shutdown.idle", "idle"}, {"on_app_exit", "app-exit"},
		{"boot timed out", "boot-timeout"}, {"disposable", "disposable"},   {"termination signal", "signal"},
		{"agent failed", "agent-failed"},
	};
	bool clean = WIFEXITED(m->qemu_status) && WEXITSTATUS(m->qemu_status) == 0;
	const char *event = "stopped", *reason = "poweroff";
	if (m->stop_why[0]) {
		reason = "requested";
		for (size_t i = 0; i < ARRAY_SIZE(causes); i++)
			if (strstr(m->stop_why, causes[i].in_why))
				reason = causes[i].reason;
	} else if (clean && !strcmp(m->shutdown_reason, "guest-reset")) {
		event = "crashed", reason = "reset";
	} else if (clean && !strcmp(m->shutdown_reason, "guest-panic")) {
		event = "crashed", reason = "panic";
	} else if (!clean) {
		event = "crashed", reason = WIFSIGNALED(m->qemu_status) ? "qemu-killed" : "qemu-failed";
	}
	_cleanup_free_ char *detail =
		m->stop_why[0] ? xasprintf("%s: %s", m->stop_why, m->exit_reason) : xstrdup(m->exit_reason);
	events_append(m->st, m->name, "qemu", event, reason, detail);
}

static void record_exit(struct mon *m)
{
	if (m->a->ephemeral) {
		_cleanup_free_ char *d = store_vm_dir(m->st, m->name);
		_cleanup_free_ char *oplock = xasprintf("%s/vms/.%s.lock", m->st->data_dir, m->name);
		rm_rf(d);
		unlink(oplock);
		return;
	}
	json_object *o = json_object_new_object();
	json_object_object_add(o, "last_exit_reason", json_object_new_string(m->exit_reason));
	json_object_object_add(o, "last_exit_at", json_object_new_int64((int64_t)now_real_s()));
	json_object_object_add(o, "last_boot_ms",
			       json_object_new_int64(m->t_hello ? (int64_t)(m->t_hello - m->t_start) : -1));
	json_object_object_add(o, "kernel_release", json_object_new_string(m->kernel_release));
	store_write_state(m->st, m->name, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY), NULL);
	json_object_put(o);
}

static void cleanup_run_dir(struct mon *m)
{
	static const char *const files[] = {"monitor.sock", "qmp.sock", "qmp-user.sock",   "agent.sock",
					    "console.sock", "lock",	"cloud-init.final"};
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		_cleanup_free_ char *p = xasprintf("%s/%s", m->run_dir, files[i]);
		unlink(p);
	}
	rmdir(m->run_dir);
}

/* When the agent is due a ping: quiet while sessions are open, or unresponsive (to see it come
 * back). UINT64_MAX: not due. */
static uint64_t ping_due(struct mon *m)
{
	if (m->ping_sent || m->stop_step != STOP_NONE || m->agent_fd < 0)
		return UINT64_MAX;
	if (m->agent_state == AGENT_READY && count_sessions(m) > 0)
		return m->agent_heard + AGENT_QUIET_MS;
	if (m->agent_state == AGENT_UNRESPONSIVE)
		return m->ping_last + AGENT_QUIET_MS;
	return UINT64_MAX;
}

/* When a reopened port's agent, still silent, is due to be asked for its HELLO. */
static uint64_t query_due(struct mon *m)
{
	return m->query_at && m->agent_state == AGENT_WAITING ? m->query_at + AGENT_QUERY_MS : UINT64_MAX;
}

static uint64_t next_timeout(struct mon *m)
{
	uint64_t t = now_ms(), dl = UINT64_MAX;
	if (m->stop_deadline)
		dl = m->stop_deadline;
	if (m->ping_sent && m->ping_sent + AGENT_PING_MS < dl)
		dl = m->ping_sent + AGENT_PING_MS;
	uint64_t ping = ping_due(m), query = query_due(m); /* ping_due scans the channels: once */
	if (ping < dl)
		dl = ping;
	if (query < dl)
		dl = query;
	if (!m->boot_reported && m->t_boot_deadline && m->t_boot_deadline < dl)
		dl = m->t_boot_deadline;
	if (m->t_restored && !m->t_hello && m->t_restored + WARM_HELLO_MS < dl)
		dl = m->t_restored + WARM_HELLO_MS;
	if (m->a->ephemeral && !m->run_client_seen && m->t_hello && ephemeral_grace_end(m) < dl)
		dl = ephemeral_grace_end(m);
	if (m->vm.spec->idle_s && m->stop_step == STOP_NONE && m->agent_state == AGENT_READY) {
		uint64_t idle_dl = m->last_activity + m->vm.spec->idle_s * 1000;
		if (idle_dl < dl)
			dl = idle_dl;
	}
	if (mon_net_deadline(&m->net) < dl)
		dl = mon_net_deadline(&m->net);
	if (mon_shares_deadline(&m->shares) < dl)
		dl = mon_shares_deadline(&m->shares);
	if (mon_balloon_deadline(&m->balloon) < dl)
		dl = mon_balloon_deadline(&m->balloon);
	if (dl == UINT64_MAX)
		return UINT64_MAX;
	return dl > t ? dl - t : 0;
}

static bool any_client_connected(struct mon *m)
{
	for (size_t i = 0; i < MAX_CLIENTS; i++)
		if (m->clients[i])
			return true;
	return false;
}

static void check_timers(struct mon *m)
{
	uint64_t t = now_ms();
	if (m->ping_sent && t >= m->ping_sent + AGENT_PING_MS) {
		m->ping_sent = 0;
		if (m->agent_state == AGENT_READY) {
			char why[64];
			snprintf(why, sizeof(why), "no answer to a ping within %d s", AGENT_PING_MS / 1000);
			agent_unresponsive(m, why);
		}
	}
	if (t >= ping_due(m))
		agent_ping(m);
	/* A new agent's HELLO can be lost in the switch to a fresh connection (agent_reconnect): ask. */
	if (t >= query_due(m)) {
		m->query_at = t;
		agent_hello_ack(m, PROTO_HELLO_QUERY);
	}
	if (m->stop_deadline && t >= m->stop_deadline && !m->qemu_exited) {
		mon_log(m, "stop step '%s' timed out, escalating", m->stop_method);
		stop_advance(m);
	}
	if (m->t_restored && !m->t_hello && t >= m->t_restored + WARM_HELLO_MS)
		clone_fallback(m);
	if (!m->boot_reported && m->t_boot_deadline && t >= m->t_boot_deadline) {
		char msg[512];
		snprintf(msg, sizeof(msg),
			 "the guest agent did not say HELLO within %llu s: see the console log with "
			 "'hutch logs %s' (%s/console.log)",
			 (unsigned long long)(m->a->boot_timeout_ms / 1000), m->name, m->vm_dir);
		notify_error(m, msg);
		begin_stop(m, true, 5000, "boot timed out");
	}
	if (mon_net_tick(&m->net, m->qmp, t, net_log))
		notify_ready(m);
	mon_balloon_tick(&m->balloon, m->qmp, t);
	if (m->shares.asked_at && t >= mon_shares_deadline(&m->shares)) {
		mon_shares_expire(&m->shares, t);
		notify_ready(m);
	}
	if (m->a->ephemeral && !m->run_client_seen && m->stop_step == STOP_NONE && m->t_hello &&
	    t >= ephemeral_grace_end(m))
		begin_stop(m, false, 20000, "no client came for the disposable VM");
	if (m->vm.spec->idle_s && m->stop_step == STOP_NONE && m->agent_state == AGENT_READY &&
	    count_sessions(m) == 0 && !any_client_connected(m) && t >= m->last_activity + m->vm.spec->idle_s * 1000)
		begin_stop(m, false, 20000, "idle (auto_shutdown.idle)");
}

static void handle_signals(struct mon *m)
{
	struct signalfd_siginfo si;
	while (read(m->sigfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT || si.ssi_signo == SIGHUP)
			begin_stop(m, false, 20000, "monitor got a termination signal");
	}
	int status;
	pid_t p;
	while ((p = waitpid(-1, &status, WNOHANG)) > 0) {
		if (p == m->qemu_pid) {
			m->qemu_exited = true;
			m->qemu_status = status;
		} else if (p == m->swtpm_pid) {
			mon_log(m, "swtpm exited (status 0x%x)", (unsigned)status);
			m->swtpm_pid = 0;
		} else {
			char what[128];
			if (mon_shares_reap(&m->shares, p, status, what, sizeof(what)))
				mon_log(m, "%s", what);
		}
	}
}

static void reply_stoppers(struct mon *m)
{
	for (size_t i = 0; i < MAX_CLIENTS; i++) {
		struct client *c = m->clients[i];
		if (!c || !c->wants_stop_reply)
			continue;
		json_object *o = json_object_new_object();
		json_object_object_add(o, "ok", json_object_new_boolean(1));
		json_object_object_add(o, "method",
				       json_object_new_string(m->stop_method[0] ? m->stop_method : "guest"));
		json_object_object_add(o, "ms", json_object_new_int64((int64_t)(now_ms() - m->stop_begun)));
		client_send_json(c, o);
		/* best effort: the socket is non-blocking, and the client also watches the lock */
		fd_set_nonblock(c->fd, false);
		outbuf_flush(c->fd, &c->out);
	}
}

static void fail_sessions(struct mon *m)
{
	for (size_t i = 0; i < MAX_CHANNELS; i++) {
		struct channel *ch = m->chans[i];
		if (!ch)
			continue;
		if (ch->cl) {
			/* like a lost ssh connection: the program's result is unknown (exit 255) */
			char msg[600];
			snprintf(msg, sizeof(msg),
				 "the VM '%s' went down while '%s' was running (%s); its result is unknown", m->name,
				 ch->prog, m->exit_reason[0] ? m->exit_reason : "qemu exited");
			client_end_session(ch->cl, ch->cl_chan, msg, ch->holding ? EXIT_FAILED : EXIT_LOST, ESHUTDOWN);
			fd_set_nonblock(ch->cl->fd, false);
			outbuf_flush(ch->cl->fd, &ch->cl->out);
		}
		chan_free(m, ch);
	}
}

/* QEMU tells us what the guest does with the agent port (VSERPORT_CHANGE, for ports with an id),
 * and when the VM is paused and resumed. */
static void handle_qmp_event(struct mon *m, json_object *ev)
{
	json_object *name, *data = NULL, *v;
	if (!json_object_object_get_ex(ev, "event", &name))
		return;
	const char *n = json_object_get_string(name), *id;
	if (!n)
		return;
	json_object_object_get_ex(ev, "data", &data);
	if (mon_net_event(&m->net, m->qmp, n, data, net_log))
		return;
	if (!strcmp(n, "VSERPORT_CHANGE")) {
		if (!data || !json_object_object_get_ex(data, "id", &v) || !(id = json_object_get_string(v)) ||
		    strcmp(id, QEMU_AGENT_PORT_ID) != 0)
			return;
		bool open = json_object_object_get_ex(data, "open", &v) && json_object_get_boolean(v);
		mon_log(m, "qmp event VSERPORT_CHANGE: the guest %s the agent port", open ? "opened" : "closed");
		if (!open)
			agent_gone(m, "the guest closed the agent port");
		else if (m->agent_state == AGENT_GONE) {
			agent_set_state(m, AGENT_WAITING, "the guest reopened the agent port; no HELLO yet");
			m->query_at = now_ms();
		}
		return;
	}
	mon_log(m, "qmp event %s", n);
	if (!strcmp(n, "SHUTDOWN") && data && json_object_object_get_ex(data, "reason", &v)) {
		snprintf(m->shutdown_reason, sizeof(m->shutdown_reason), "%s", json_object_get_string(v));
	} else if (!strcmp(n, "STOP")) {
		m->paused = true;
		if (m->agent_state == AGENT_READY)
			agent_unresponsive(m, "the VM is paused");
	} else if (!strcmp(n, "RESUME")) {
		m->paused = false;
		if (m->agent_state == AGENT_UNRESPONSIVE)
			agent_ping(m);
	}
}

static void qmp_readable(struct mon *m)
{
	struct hutch_error err = {0};
	int r = qmp_process_input(m->qmp, &err);
	json_object *ev;
	/* the events read before an EOF still count: QEMU's last words say why it exits */
	while ((ev = qmp_next_event(m->qmp))) {
		handle_qmp_event(m, ev);
		json_object_put(ev);
	}
	if (r < 0) {
		mon_log(m, "qmp: %s", err.msg ? err.msg : "closed");
		qmp_close(m->qmp);
		m->qmp = NULL;
	}
	hutch_error_clear(&err);
}

static void loop(struct mon *m)
{
	while (!m->qemu_exited) {
		/* events that came in while a command waited for its reply (qmp_execute queues them) */
		for (json_object *ev; m->qmp && (ev = qmp_next_event(m->qmp));) {
			handle_qmp_event(m, ev);
			json_object_put(ev);
		}
		struct pollfd pfd[4 + MAX_CLIENTS];
		struct client *who[4 + MAX_CLIENTS];
		nfds_t n = 0;
		pfd[n] = (struct pollfd){.fd = m->sigfd, .events = POLLIN};
		who[n++] = NULL;
		pfd[n] = (struct pollfd){.fd = m->listen_fd, .events = POLLIN};
		who[n++] = NULL;
		pfd[n] = (struct pollfd){.fd = m->qmp ? qmp_fd(m->qmp) : -1, .events = POLLIN};
		who[n++] = NULL;
		pfd[n] = (struct pollfd){.fd = m->agent_fd,
					 .events = (short)(POLLIN | (outbuf_pending(&m->agent_out) ? POLLOUT : 0))};
		who[n++] = NULL;
		for (size_t i = 0; i < MAX_CLIENTS; i++) {
			struct client *c = m->clients[i];
			if (!c)
				continue;
			pfd[n] = (struct pollfd){.fd = c->fd,
						 .events = (short)(POLLIN | (outbuf_pending(&c->out) ? POLLOUT : 0))};
			who[n++] = c;
		}
		uint64_t to = next_timeout(m);
		int r = poll(pfd, n, to == UINT64_MAX ? -1 : (int)(to > 60000 ? 60000 : to));
		if (r < 0 && errno != EINTR)
			break;
		if (pfd[0].revents)
			handle_signals(m);
		if (pfd[1].revents & POLLIN)
			accept_clients(m);
		if (m->qmp && (pfd[2].revents & (POLLIN | POLLHUP | POLLERR)))
			qmp_readable(m);
		if (m->agent_fd >= 0 && (pfd[3].revents & (POLLIN | POLLHUP | POLLERR)))
			agent_readable(m);
		if (m->agent_fd >= 0 && outbuf_pending(&m->agent_out)) {
			if (outbuf_flush(m->agent_fd, &m->agent_out) < 0)
				mon_log(m, "write to agent failed");
			else if (outbuf_pending(&m->agent_out) > AGENT_OUT_MAX)
				agent_broken(m, "agent stopped reading");
		}
		for (nfds_t i = 4; i < n; i++) {
			struct client *c = who[i];
			if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
				client_readable(m, c);
		}
		for (size_t i = 0; i < MAX_CLIENTS; i++) {
			struct client *c = m->clients[i];
			if (!c)
				continue;
			if (!c->closing && outbuf_pending(&c->out) && outbuf_flush(c->fd, &c->out) < 0)
				c->closing = true;
			if (c->closing)
				client_free(m, c);
		}
		check_timers(m);
	}
}

/* TPM 2.0 emulation: swtpm on a unix socket, our child like QEMU, exiting when QEMU disconnects. */
static int spawn_swtpm(struct mon *m, struct hutch_error *err)
{
	_cleanup_free_ char *state = xasprintf("%s/tpm", m->vm_dir);
	_cleanup_free_ char *sock = xasprintf("%s/swtpm.sock", m->run_dir);
	_cleanup_free_ char *log = xasprintf("%s/swtpm.log", m->vm_dir);
	return swtpm_spawn(state, sock, log, &m->swtpm_pid, err);
}

/* Image and bootc VMs get a forward to their sshd on a free loopback port, as Lima does, unless the
 * spec already forwards it. `hutch ssh` finds it with port-ls. */
static void auto_ssh_forward(struct mon *m)
{
	struct forward f = {.guest = ready_ssh_forward_wanted(m->vm.store, m->vm.spec, m->name, m->forwards)};
	if (!f.guest)
		return;
	struct hutch_error err = {0};
	if (pick_forward(m, &f, &err) < 0) {
		mon_log(m, "ssh forward: %s", err.msg);
		hutch_error_clear(&err);
		return;
	}
	_cleanup_free_ char *rule = forward_rule(&f);
	_cleanup_free_ char *line = xasprintf("hostfwd_add net0 %s", rule);
	if (qmp_hmp(m->qmp, line, HMP_MS, &err) < 0) {
		mon_log(m, "ssh forward: %s", err.msg);
		hutch_error_clear(&err);
		return;
	}
	m->forwards = strv_push(m->forwards, xasprintf("%u:%u/tcp", f.host, f.guest));
	mon_log(m, "ssh is forwarded from 127.0.0.1:%u", f.host);
}

/* Whether a clone's QEMU refused its template (r: the restore's result): QMP said no, the
 * migration failed, or QEMU ended by itself with a failure status (a state it cannot load makes it
 * exit 1). A QEMU still running (slow under load), killed by a signal (the OOM killer) or never
 * started says nothing against the template. */
static bool clone_refused(struct mon *m, int r)
{
	if (r == -EREMOTEIO || r == -EPROTO)
		return true;
	int st = m->spawn_status;
	if (m->qemu_pid > 0) {
		if (!reaped_within(m->qemu_pid, 1000, &st))
			return false;
		m->qemu_pid = 0;
	} else if (!m->spawn_exited) {
		return false;
	}
	return WIFEXITED(st) && WEXITSTATUS(st) != 0;
}

/* A clone restores its template's state (warm.h); when that fails it boots cold on a fresh QEMU. */
static int spawn_qemu_or_clone(struct mon *m, struct hutch_error *err)
{
	int r = spawn_qemu(m, err);
	if (!warm_clone_pending(m->warm))
		return r;
	if (r == 0)
		r = warm_clone_restore(m->warm, m->qmp, err);
	if (r == 0) {
		m->t_restored = now_ms();
		mon_log(m, "restored from warm template in %llu ms", (unsigned long long)(now_ms() - m->t_spawn));
		/* its agent was answered by the template's monitor: ask it to say HELLO to us */
		m->query_at = now_ms();
		agent_hello_ack(m, PROTO_HELLO_QUERY);
		return 0;
	}
	warm_clone_fall_back(m->warm, &m->plan, clone_refused(m, r), err->msg);
	mon_log(m, "%s", warm_clone_warning(m->warm));
	hutch_error_clear(err);
	qemu_discard(m);
	return spawn_qemu(m, err);
}

static int setup(struct mon *m, struct hutch_error *err)
{
	int r = vm_load(m->st, m->name, &m->vm, err);
	if (r < 0)
		return r;
	/* Host port 0 is any free port (so instances of one spec can run side by side): it is chosen
	 * here, before the plan puts the forwards on QEMU's command line. */
	char **fw = m->vm.spec->net_mode == NET_USER ? m->vm.spec->forward : NULL;
	for (size_t i = 0; fw && fw[i]; i++) {
		struct forward f;
		if (forward_parse(fw[i], &f) < 0)
			return hutch_error_set(err, EINVAL, "invalid port forward '%s'", fw[i]);
		r = pick_forward(m, &f, err);
		if (r < 0)
			return r;
		free(fw[i]);
		fw[i] = xasprintf("%u:%u/%s", f.host, f.guest, f.udp ? "udp" : "tcp");
		m->forwards = strv_push(m->forwards, xstrdup(fw[i]));
	}
	r = qemu_plan_make(&m->vm, PLAN_MONITOR, &m->plan, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *warm_log = NULL;
	warm_clone_setup(m->st, m->name, m->vm.spec, &m->plan, m->a->boot_timeout_ms ? m->a->boot_timeout_ms : 120000,
			 &m->warm, &warm_log);
	if (warm_log)
		mon_log(m, "%s", warm_log);
	m->vm_dir = xstrdup(m->plan.vm_dir);
	m->run_dir = xstrdup(m->plan.run_dir);
	_cleanup_free_ char *mon_path = xasprintf("%s/monitor.sock", m->run_dir);
	m->listen_fd = unix_listen(mon_path, err);
	if (m->listen_fd < 0)
		return m->listen_fd;
	fd_set_nonblock(m->listen_fd, true);
	r = mon_shares_start(&m->shares, m->plan.shares, m->vm_dir, err);
	if (r < 0)
		return r;
	mon_net_init(&m->net, m->name, m->plan.net);
	m->net.words = m->plan.net ? net_cmdline(m->vm.spec, m->plan.net) : NULL;
	autofwd_setup(&m->autofwd, m->st, m->vm.spec);
	m->t_spawn = now_ms();
	r = spawn_qemu_or_clone(m, err);
	if (r < 0)
		return r;
	if (!m->plan.accel->kvm)
		mon_log(m, "using TCG: %s", m->plan.accel->why);
	auto_ssh_forward(m);
	mon_net_start(&m->net, m->qmp, net_log);
	mon_balloon_init(&m->balloon, m->st, m->vm.spec, m->plan.argv);
	mon_usb_start(m->st, m->name, m->vm.spec, net_log);
	return 0;
}

int monitor_main(struct store *st, const struct monitor_args *a)
{
	struct mon m = {.st = st, .a = a, .agent_fd = -1, .listen_fd = -1, .sigfd = -1};
	m.name = xstrdup(a->name);
	m.t_start = now_ms();
	m.last_activity = m.t_start;
	m.agent_since = now_real_s();
	snprintf(m.agent_why, sizeof(m.agent_why), "the VM is booting");
	if (a->boot_timeout_ms)
		m.t_boot_deadline = m.t_start + a->boot_timeout_ms;
	proto_reader_init(&m.agent_rd);
	signal(SIGPIPE, SIG_IGN);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	m.sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);

	struct hutch_error err = {0};
	int rc = 0;
	if (setup(&m, &err) < 0) {
		mon_log(&m, "start failed: %s", err.msg);
		notify_error(&m, err.msg);
		if (m.qemu_pid > 0) {
			kill(m.qemu_pid, SIGKILL);
			waitpid(m.qemu_pid, NULL, 0);
		}
		rc = 1;
	} else {
		events_append(m.st, m.name, "qemu", "started", m.warm ? "clone" : "booted", NULL);
		loop(&m);
		/* QEMU may exit before we read its SHUTDOWN event (the reason) */
		struct pollfd qp = {.fd = m.qmp ? qmp_fd(m.qmp) : -1, .events = POLLIN};
		if (m.qmp && poll(&qp, 1, 0) > 0)
			qmp_readable(&m);
		describe_exit(&m);
		mon_log(&m, "qemu is gone: %s", m.exit_reason);
		event_exit(&m);
		if (!m.boot_reported) {
			char msg[512];
			snprintf(msg, sizeof(msg),
				 "the VM stopped before the agent said HELLO: %s; see 'hutch logs %s'", m.exit_reason,
				 m.name);
			notify_error(&m, msg);
			rc = 1;
		}
		fail_sessions(&m);
	}
	hutch_error_clear(&err);
	mon_shares_stop(&m.shares);
	if (m.vm.spec)
		record_exit(&m);
	if (m.run_dir)
		cleanup_run_dir(&m);
	else {
		_cleanup_free_ char *rd = store_run_dir(st, a->name);
		_cleanup_free_ char *lk = store_run_file(st, a->name, "lock");
		_cleanup_free_ char *ms = store_run_file(st, a->name, "monitor.sock");
		unlink(ms);
		unlink(lk);
		rmdir(rd);
	}
	reply_stoppers(&m);
	for (size_t i = 0; i < MAX_CLIENTS; i++)
		if (m.clients[i])
			client_free(&m, m.clients[i]);
	qmp_close(m.qmp);
	if (m.agent_fd >= 0)
		close(m.agent_fd);
	proto_reader_free(&m.agent_rd);
	proto_buf_free(&m.agent_out.b);
	qemu_plan_release(&m.plan);
	vm_release(&m.vm);
	strv_free(m.forwards);
	mon_net_release(&m.net);
	autofwd_release(&m.autofwd);
	warm_clone_free(m.warm);
	free(m.name);
	free(m.vm_dir);
	free(m.run_dir);
	/* The lock goes last: once it is released, the VM is "stopped" and may be started again. */
	close(a->lock_fd);
	return rc;
}
