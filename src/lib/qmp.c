/* QMP client. Bytes are fed to an incremental json_tokener as they arrive, so a message may be split
 * across reads or several messages may share one read; nothing depends on newlines. Every wait is
 * a poll() against one deadline, every message is capped at QMP_MAX_MESSAGE, and every read
 * chunk is parsed completely before the call returns, so no complete message is ever left hidden
 * in a buffer behind a socket that poll() reports as idle. */
#include "qmp.h"

#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#define QMP_READ_CHUNK 65536
/* process_input reads at most this many chunks per call, so a flooding peer cannot starve the
 * monitor's poll loop; the socket stays readable and the loop calls again. */
#define QMP_INPUT_ROUNDS 16
#define QMP_JSON_DEPTH 64
#define QMP_ERROR_TEXT_MAX 256

struct qmp {
	int fd;
	struct json_tokener *tok;
	size_t msg_bytes; /* bytes fed to tok since the last complete message */
	uint64_t next_id;
	uint64_t want_id;   /* id of the reply being waited for, 0 when none */
	json_object *reply; /* the reply with want_id, once it arrived */
	bool want_greeting; /* before the greeting, anything else is a protocol error */
	bool greeted;
	int dead_code; /* once the stream is broken (EOF, bad JSON, ...), every call fails alike */
	char *dead_msg;
	json_object *events[QMP_MAX_EVENTS]; /* ring */
	size_t ev_head, ev_count;
	char rbuf[QMP_READ_CHUNK];
};

_printf_(4, 5) static int qmp_fail(struct qmp *q, struct hutch_error *err, int code, const char *fmt, ...)
{
	struct strbuf sb = STRBUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	free(q->dead_msg);
	q->dead_msg = strbuf_detach(&sb, NULL);
	q->dead_code = code;
	return hutch_error_set(err, code, "%s", q->dead_msg);
}

static int qmp_check_alive(const struct qmp *q, struct hutch_error *err)
{
	if (q->dead_code)
		return hutch_error_set(err, q->dead_code, "%s", q->dead_msg);
	return 0;
}

static uint64_t deadline_after(uint64_t timeout_ms)
{
	uint64_t now = now_ms();
	return timeout_ms > UINT64_MAX - now ? UINT64_MAX : now + timeout_ms;
}

static int poll_ms_until(uint64_t deadline)
{
	uint64_t now = now_ms();
	if (now >= deadline)
		return 0;
	return deadline - now > INT_MAX ? INT_MAX : (int)(deadline - now);
}

/* Copy a peer-supplied string for an error message: bounded, no control characters. */
static void untrusted_text(json_object *o, const char *fallback, char *out, size_t outlen)
{
	const char *untrusted_s = json_object_is_type(o, json_type_string) ? json_object_get_string(o) : NULL;
	if (!untrusted_s)
		untrusted_s = fallback;
	size_t i = 0;
	for (; untrusted_s[i] && i + 1 < outlen; i++) {
		unsigned char c = (unsigned char)untrusted_s[i];
		out[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	out[i] = 0;
}

static void qmp_queue_event(struct qmp *q, json_object *ev)
{
	if (q->ev_count == QMP_MAX_EVENTS) {
		json_object *old = q->events[q->ev_head];
		char name[64];
		untrusted_text(json_object_object_get(old, "event"), "?", name, sizeof(name));
		log_debug("qmp: event queue full, dropping '%s'", name);
		json_object_put(old);
		q->ev_head = (q->ev_head + 1) % QMP_MAX_EVENTS;
		q->ev_count--;
	}
	q->events[(q->ev_head + q->ev_count) % QMP_MAX_EVENTS] = ev;
	q->ev_count++;
}

json_object *qmp_next_event(struct qmp *q)
{
	if (!q || q->ev_count == 0)
		return NULL;
	json_object *ev = q->events[q->ev_head];
	q->events[q->ev_head] = NULL;
	q->ev_head = (q->ev_head + 1) % QMP_MAX_EVENTS;
	q->ev_count--;
	return ev;
}

static bool reply_has_id(json_object *msg, uint64_t id)
{
	json_object *jid;
	if (!json_object_object_get_ex(msg, "id", &jid) || !json_object_is_type(jid, json_type_int))
		return false;
	errno = 0;
	uint64_t v = json_object_get_uint64(jid);
	return errno == 0 && v == id;
}

/* Takes ownership of msg. */
static int qmp_dispatch(struct qmp *q, json_object *msg, struct hutch_error *err)
{
	if (!json_object_is_type(msg, json_type_object)) {
		json_object_put(msg);
		return qmp_fail(q, err, EPROTO, "qmp: malformed message: not a JSON object");
	}
	if (json_object_object_get_ex(msg, "QMP", NULL)) {
		q->greeted = true;
		json_object_put(msg);
		return 0;
	}
	if (q->want_greeting && !q->greeted) {
		json_object_put(msg);
		return qmp_fail(q, err, EPROTO, "qmp: malformed message: expected the greeting");
	}
	json_object *name;
	if (json_object_object_get_ex(msg, "event", &name) && json_object_is_type(name, json_type_string)) {
		qmp_queue_event(q, msg);
		return 0;
	}
	if (json_object_object_get_ex(msg, "return", NULL) || json_object_object_get_ex(msg, "error", NULL)) {
		if (q->want_id && !q->reply && reply_has_id(msg, q->want_id)) {
			q->reply = msg;
			return 0;
		}
		log_debug("qmp: discarding a reply nobody waits for");
		json_object_put(msg);
		return 0;
	}
	log_debug("qmp: discarding an unknown message");
	json_object_put(msg);
	return 0;
}

int qmp_feed(struct qmp *q, const void *buf, size_t len, struct hutch_error *err)
{
	int r = qmp_check_alive(q, err);
	if (r < 0)
		return r;
	const char *p = buf;
	while (len > 0) {
		size_t room = QMP_MAX_MESSAGE - q->msg_bytes;
		size_t take = len < room ? len : room;
		json_object *msg = json_tokener_parse_ex(q->tok, p, (int)take);
		enum json_tokener_error jerr = json_tokener_get_error(q->tok);
		if (jerr == json_tokener_continue) {
			q->msg_bytes += take;
			p += take;
			len -= take;
			if (q->msg_bytes >= QMP_MAX_MESSAGE)
				return qmp_fail(q, err, EMSGSIZE, "qmp: message larger than 10 MiB");
			continue;
		}
		size_t used = json_tokener_get_parse_end(q->tok);
		if (jerr != json_tokener_success || used == 0 || used > take) {
			json_object_put(msg);
			return qmp_fail(q, err, EPROTO, "qmp: malformed message");
		}
		json_tokener_reset(q->tok);
		q->msg_bytes = 0;
		p += used;
		len -= used;
		r = qmp_dispatch(q, msg, err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* One non-blocking read. Returns > 0 after parsing what was read, 0 if nothing was available. */
static int qmp_read_once(struct qmp *q, struct hutch_error *err)
{
	for (;;) {
		ssize_t n = recv(q->fd, q->rbuf, sizeof(q->rbuf), MSG_DONTWAIT);
		if (n < 0 && errno == ENOTSOCK)
			n = read(q->fd, q->rbuf, sizeof(q->rbuf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0 && errno == ECONNRESET)
			n = 0;
		if (n < 0)
			return qmp_fail(q, err, errno, "qmp: read: %s", strerror(errno));
		if (n == 0)
			return qmp_fail(q, err, EPIPE, "qmp: connection closed");
		int r = qmp_feed(q, q->rbuf, (size_t)n, err);
		return r < 0 ? r : 1;
	}
}

/* Wait until the deadline for input and parse one read's worth. -ETIMEDOUT leaves err alone. */
static int qmp_read_until(struct qmp *q, uint64_t deadline, struct hutch_error *err)
{
	for (;;) {
		struct pollfd pfd = {.fd = q->fd, .events = POLLIN};
		int n = poll(&pfd, 1, poll_ms_until(deadline));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return qmp_fail(q, err, errno, "qmp: poll: %s", strerror(errno));
		if (n == 0)
			return -ETIMEDOUT;
		if (pfd.revents & POLLNVAL)
			return qmp_fail(q, err, EBADF, "qmp: socket is not open");
		int r = qmp_read_once(q, err);
		if (r != 0)
			return r < 0 ? r : 0;
		/* Spurious wakeup: poll again, unless the time is up. */
		if (now_ms() >= deadline)
			return -ETIMEDOUT;
	}
}

/* Write everything before the deadline; handles EINTR, EAGAIN and partial writes. */
static int qmp_write_until(struct qmp *q, const char *buf, size_t len, uint64_t deadline)
{
	while (len > 0) {
		ssize_t n = send(q->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == ENOTSOCK)
			n = write(q->fd, buf, len);
		if (n >= 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		struct pollfd pfd = {.fd = q->fd, .events = POLLOUT};
		int p;
		do
			p = poll(&pfd, 1, poll_ms_until(deadline));
		while (p < 0 && errno == EINTR);
		if (p < 0)
			return -errno;
		if (p == 0)
			return -ETIMEDOUT;
	}
	return 0;
}

static int qmp_send_command(struct qmp *q, const char *cmd, json_object *args, uint64_t id, uint64_t deadline,
			    uint64_t timeout_ms, struct hutch_error *err)
{
	json_object *msg = json_object_new_object();
	json_object_object_add(msg, "execute", json_object_new_string(cmd));
	if (args)
		json_object_object_add(msg, "arguments", args);
	json_object_object_add(msg, "id", json_object_new_uint64(id));
	_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
	strbuf_adds(&sb, json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN));
	strbuf_adds(&sb, "\r\n");
	json_object_put(msg);

	int r = qmp_write_until(q, sb.buf, sb.len, deadline);
	/* A command may be half written: the stream is unusable either way. */
	if (r == -ETIMEDOUT)
		return qmp_fail(q, err, ETIMEDOUT, "qmp %s: cannot send within %" PRIu64 " ms", cmd, timeout_ms);
	if (r == -EPIPE || r == -ECONNRESET)
		return qmp_fail(q, err, EPIPE, "qmp: connection closed");
	if (r < 0)
		return qmp_fail(q, err, -r, "qmp: write: %s", strerror(-r));
	return 0;
}

/* Takes ownership of reply. */
static int qmp_take_reply(const char *cmd, json_object *reply, json_object **ret_return, struct hutch_error *err)
{
	json_object *e;
	if (json_object_object_get_ex(reply, "error", &e)) {
		char cls[QMP_ERROR_TEXT_MAX], desc[QMP_ERROR_TEXT_MAX];
		untrusted_text(json_object_object_get(e, "class"), "GenericError", cls, sizeof(cls));
		untrusted_text(json_object_object_get(e, "desc"), "unknown error", desc, sizeof(desc));
		json_object_put(reply);
		return hutch_error_set(err, EREMOTEIO, "qmp %s: %s: %s", cmd, cls, desc);
	}
	if (ret_return)
		*ret_return = json_object_get(json_object_object_get(reply, "return"));
	json_object_put(reply);
	return 0;
}

int qmp_execute(struct qmp *q, const char *cmd, json_object *args, uint64_t timeout_ms, json_object **ret_return,
		struct hutch_error *err)
{
	int r = qmp_check_alive(q, err);
	if (r < 0) {
		json_object_put(args);
		return r;
	}
	uint64_t deadline = deadline_after(timeout_ms);
	uint64_t id = ++q->next_id;
	r = qmp_send_command(q, cmd, args, id, deadline, timeout_ms, err);
	if (r < 0)
		return r;

	q->want_id = id;
	while (!q->reply) {
		r = qmp_read_until(q, deadline, err);
		if (r == -ETIMEDOUT)
			r = hutch_error_set(err, ETIMEDOUT, "qmp %s: no reply within %" PRIu64 " ms", cmd, timeout_ms);
		if (r < 0)
			break;
	}
	q->want_id = 0;
	json_object *reply = TAKE_PTR(q->reply);
	if (r < 0) {
		json_object_put(reply);
		return r;
	}
	return qmp_take_reply(cmd, reply, ret_return, err);
}

int qmp_hmp_reply(const char *out, struct hutch_error *err)
{
	if (!out)
		return 0;
	out += strspn(out, " \r\n");
	if (!*out || strstr(out, " removed"))
		return 0;
	return hutch_error_set(err, EIO, "qemu: %.*s", (int)strcspn(out, "\r\n"), out);
}

int qmp_hmp(struct qmp *q, const char *line, uint64_t timeout_ms, struct hutch_error *err)
{
	if (!q)
		return hutch_error_set(err, ENOTCONN, "QMP is not connected");
	json_object *args = json_object_new_object(), *ret = NULL;
	json_object_object_add(args, "command-line", json_object_new_string(line));
	int r = qmp_execute(q, "human-monitor-command", args, timeout_ms, &ret, err);
	if (r < 0)
		return r;
	r = qmp_hmp_reply(ret && json_object_is_type(ret, json_type_string) ? json_object_get_string(ret) : "", err);
	json_object_put(ret);
	return r;
}

int qmp_process_input(struct qmp *q, struct hutch_error *err)
{
	int r = qmp_check_alive(q, err);
	for (int i = 0; r >= 0 && i < QMP_INPUT_ROUNDS; i++) {
		r = qmp_read_once(q, err);
		if (r == 0)
			break;
	}
	return r < 0 ? r : 0;
}

struct qmp *qmp_new(int fd)
{
	struct qmp *q = xcalloc(1, sizeof(*q));
	q->fd = fd;
	q->tok = json_tokener_new_ex(QMP_JSON_DEPTH);
	if (!q->tok)
		abort();
	return q;
}

int qmp_open(int fd, uint64_t timeout_ms, struct qmp **ret, struct hutch_error *err)
{
	_cleanup_(qmp_closep) struct qmp *q = qmp_new(fd);
	uint64_t deadline = deadline_after(timeout_ms);
	q->want_greeting = true;
	while (!q->greeted) {
		int r = qmp_read_until(q, deadline, err);
		if (r == -ETIMEDOUT)
			return hutch_error_set(err, ETIMEDOUT, "qmp: no greeting within %" PRIu64 " ms", timeout_ms);
		if (r < 0)
			return r;
	}
	uint64_t now = now_ms();
	int r = qmp_execute(q, "qmp_capabilities", NULL, deadline > now ? deadline - now : 0, NULL, err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(q);
	return 0;
}

void qmp_close(struct qmp *q)
{
	if (!q)
		return;
	if (q->fd >= 0)
		close(q->fd);
	if (q->tok)
		json_tokener_free(q->tok);
	json_object_put(q->reply);
	json_object *ev;
	while ((ev = qmp_next_event(q)))
		json_object_put(ev);
	free(q->dead_msg);
	free(q);
}

int qmp_fd(const struct qmp *q) { return q ? q->fd : -1; }
