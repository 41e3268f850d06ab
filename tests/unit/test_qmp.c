/* QMP client against a scripted server: a forked child on the other end of a socketpair. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "qmp.h"

#define GREETING \
	"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}}, \"capabilities\": []}}\r\n"
#define LONG_TIMEOUT 10000
#define UNUSED __attribute__((unused))

/* ---- the scripted server (runs in the child) ---- */

static void srv_send(int fd, const char *s)
{
	size_t len = strlen(s);
	while (len > 0) {
		ssize_t n = send(fd, s, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		s += n;
		len -= (size_t)n;
	}
}

_printf_(2, 3) static void srv_sendf(int fd, const char *fmt, ...)
{
	struct strbuf sb = STRBUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	srv_send(fd, strbuf_str(&sb));
	strbuf_release(&sb);
}

/* Reads one command line; returns its parsed JSON, or NULL on EOF. */
static json_object *srv_recv(int fd)
{
	struct strbuf sb = STRBUF_INIT;
	char c;
	for (;;) {
		ssize_t n = read(fd, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			strbuf_release(&sb);
			return NULL;
		}
		if (c == '\n')
			break;
		strbuf_addch(&sb, c);
	}
	json_object *o = json_tokener_parse(strbuf_str(&sb));
	strbuf_release(&sb);
	return o;
}

/* Receives a command, checks its name, returns its id. Exits the child on a mismatch. */
static long long srv_expect(int fd, const char *cmd)
{
	json_object *o = srv_recv(fd);
	if (!o)
		_exit(2);
	json_object *ex = json_object_object_get(o, "execute");
	if (!ex || strcmp(json_object_get_string(ex), cmd) != 0)
		_exit(3);
	long long id = (long long)json_object_get_int64(json_object_object_get(o, "id"));
	json_object_put(o);
	return id;
}

static void srv_wait_eof(int fd)
{
	char buf[4096];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n == 0 || (n < 0 && errno != EINTR))
			return;
	}
}

static void srv_handshake(int fd)
{
	srv_send(fd, GREETING);
	long long id = srv_expect(fd, "qmp_capabilities");
	srv_sendf(fd, "{\"return\": {}, \"id\": %lld}\r\n", id);
}

struct server {
	pid_t pid;
	int fd;
};

static struct server srv_start(void (*script)(int fd))
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(sv[0]);
		script(sv[1]);
		close(sv[1]);
		_exit(0);
	}
	close(sv[1]);
	return (struct server){pid, sv[0]};
}

/* Returns the child's exit status; the child's fd is closed by whoever owns it. */
static int srv_finish(struct server *s)
{
	int status = 0;
	while (waitpid(s->pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static struct qmp *open_ok(struct server *s)
{
	struct qmp *q = NULL;
	struct hutch_error err = {0};
	int r = qmp_open(s->fd, LONG_TIMEOUT, &q, &err);
	if (r < 0)
		fail_msg("qmp_open: %s", err.msg);
	hutch_error_clear(&err);
	return q;
}

/* ---- scripts ---- */

static void script_ok(int fd)
{
	srv_handshake(fd);
	json_object *o = srv_recv(fd);
	if (!o)
		_exit(2);
	/* The arguments must arrive as given. */
	json_object *args = json_object_object_get(o, "arguments");
	if (!args || strcmp(json_object_get_string(json_object_object_get(args, "device")), "vda") != 0)
		_exit(4);
	long long id = (long long)json_object_get_int64(json_object_object_get(o, "id"));
	json_object_put(o);
	srv_sendf(fd, "{\"return\": {\"status\": \"running\", \"running\": true}, \"id\": %lld}\r\n", id);
	id = srv_expect(fd, "quit");
	srv_sendf(fd, "{\"return\": {}, \"id\": %lld}\r\n", id);
	srv_wait_eof(fd);
}

static void script_events_first(int fd)
{
	srv_handshake(fd);
	long long id = srv_expect(fd, "stop");
	srv_send(fd, "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"STOP\"}\r\n");
	srv_send(fd, "{\"event\": \"RESUME\"}\r\n{\"event\": \"POWERDOWN\"}");
	/* The reply and a later event in one write: the event must still be queued. */
	srv_sendf(fd, "{\"return\": {}, \"id\": %lld}\r\n{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": true}}\r\n",
		  id);
	srv_wait_eof(fd);
}

static void script_mismatched_id(int fd)
{
	srv_handshake(fd);
	long long id = srv_expect(fd, "query-status");
	srv_sendf(fd, "{\"return\": {\"status\": \"wrong\"}, \"id\": %lld}\r\n", id + 100);
	srv_send(fd, "{\"return\": {\"status\": \"no-id\"}}\r\n");
	srv_send(fd, "{\"return\": {\"status\": \"string-id\"}, \"id\": \"1\"}\r\n");
	srv_sendf(fd, "{\"return\": {\"status\": \"right\"}, \"id\": %lld}\r\n", id);
	srv_wait_eof(fd);
}

static void script_error_reply(int fd)
{
	srv_handshake(fd);
	long long id = srv_expect(fd, "device_add");
	srv_sendf(fd, "{\"id\": %lld, \"error\": {\"class\": \"GenericError\", \"desc\": \"Duplicate ID 'net0'\"}}\r\n",
		  id);
	id = srv_expect(fd, "device_del");
	srv_sendf(fd,
		  "{\"id\": %lld, \"error\": {\"class\": \"DeviceNotFound\", \"desc\": \"bad\\n\\u001b[31mred\"}}\r\n",
		  id);
	srv_wait_eof(fd);
}

static void script_eof_mid_reply(int fd)
{
	srv_handshake(fd);
	long long id = srv_expect(fd, "query-status");
	srv_sendf(fd, "{\"id\": %lld, \"return\": {\"sta", id);
}

static void script_no_reply(int fd)
{
	srv_handshake(fd);
	srv_expect(fd, "query-status");
	srv_wait_eof(fd);
}

static void script_idle(int fd)
{
	srv_handshake(fd);
	srv_wait_eof(fd);
}

static void script_late_reply(int fd)
{
	srv_handshake(fd);
	long long id1 = srv_expect(fd, "query-status");
	long long id2 = srv_expect(fd, "query-name");
	/* The reply to the command that timed out arrives first and must not be taken for the second. */
	srv_sendf(fd, "{\"return\": {\"status\": \"late\"}, \"id\": %lld}\r\n", id1);
	srv_sendf(fd, "{\"return\": {\"name\": \"web\"}, \"id\": %lld}\r\n", id2);
	srv_wait_eof(fd);
}

static void script_oversized(int fd)
{
	srv_handshake(fd);
	long long id = srv_expect(fd, "query-status");
	srv_sendf(fd, "{\"id\": %lld, \"return\": {\"x\": \"", id);
	static char chunk[65536];
	memset(chunk, 'a', sizeof(chunk) - 1);
	for (size_t sent = 0; sent <= QMP_MAX_MESSAGE + sizeof(chunk); sent += sizeof(chunk) - 1)
		if (send(fd, chunk, sizeof(chunk) - 1, MSG_NOSIGNAL) < 0)
			break;
	srv_wait_eof(fd);
}

static void script_bad_json(int fd)
{
	srv_handshake(fd);
	long long id = srv_expect(fd, "query-status");
	srv_sendf(fd, "{\"id\": %lld, \"return\": ]}\r\n", id);
	srv_wait_eof(fd);
}

static void script_non_object(int fd)
{
	srv_handshake(fd);
	srv_expect(fd, "query-status");
	srv_send(fd, "[1, 2, 3]\r\n");
	srv_wait_eof(fd);
}

static void script_greeting_not_first(int fd)
{
	srv_send(fd, "{\"return\": {}}\r\n");
	srv_wait_eof(fd);
}

static void script_greeting_eof(int fd) { (void)fd; }

static void script_greeting_silent(int fd) { srv_wait_eof(fd); }

static void script_slow_bytes(int fd)
{
	/* One byte per write: the client must reassemble messages across reads. */
	for (const char *p = GREETING; *p; p++)
		send(fd, p, 1, MSG_NOSIGNAL);
	long long id = srv_expect(fd, "qmp_capabilities");
	char *reply = xasprintf("{\"return\": {}, \"id\": %lld}", id);
	for (const char *p = reply; *p; p++)
		send(fd, p, 1, MSG_NOSIGNAL);
	free(reply);
	srv_wait_eof(fd);
}

static void script_event_flood(int fd)
{
	srv_handshake(fd);
	long long id = srv_expect(fd, "cont");
	struct strbuf sb = STRBUF_INIT;
	for (int i = 0; i < QMP_MAX_EVENTS + 5; i++)
		strbuf_addf(&sb, "{\"event\": \"E%d\"}\r\n", i);
	strbuf_addf(&sb, "{\"return\": {}, \"id\": %lld}\r\n", id);
	srv_send(fd, strbuf_str(&sb));
	strbuf_release(&sb);
	srv_wait_eof(fd);
}

static void script_shutdown_then_eof(int fd)
{
	srv_handshake(fd);
	srv_send(
		fd,
		"{\"event\": \"POWERDOWN\"}\r\n{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": true, \"reason\": \"guest-shutdown\"}}\r\n");
}

/* ---- tests ---- */

static void test_open_execute_ok(void **state UNUSED)
{
	struct server s = srv_start(script_ok);
	struct qmp *q = open_ok(&s);
	struct hutch_error err = {0};
	json_object *ret = NULL;
	json_object *args = json_object_new_object();
	json_object_object_add(args, "device", json_object_new_string("vda"));
	assert_int_equal(qmp_execute(q, "query-status", args, LONG_TIMEOUT, &ret, &err), 0);
	assert_string_equal(json_object_get_string(json_object_object_get(ret, "status")), "running");
	json_object_put(ret);
	assert_int_equal(qmp_execute(q, "quit", NULL, LONG_TIMEOUT, NULL, &err), 0);
	assert_null(qmp_next_event(q));
	qmp_close(q);
	assert_int_equal(srv_finish(&s), 0);
}

static void test_nonblocking_fd(void **state UNUSED)
{
	struct server s = srv_start(script_ok);
	assert_int_equal(fd_set_nonblock(s.fd, true), 0);
	struct qmp *q = open_ok(&s);
	json_object *args = json_object_new_object();
	json_object_object_add(args, "device", json_object_new_string("vda"));
	assert_int_equal(qmp_execute(q, "query-status", args, LONG_TIMEOUT, NULL, NULL), 0);
	assert_int_equal(qmp_execute(q, "quit", NULL, LONG_TIMEOUT, NULL, NULL), 0);
	qmp_close(q);
	assert_int_equal(srv_finish(&s), 0);
}

static void expect_event(struct qmp *q, const char *name)
{
	json_object *ev = qmp_next_event(q);
	assert_non_null(ev);
	assert_string_equal(json_object_get_string(json_object_object_get(ev, "event")), name);
	json_object_put(ev);
}

static void test_events_before_reply(void **state UNUSED)
{
	struct server s = srv_start(script_events_first);
	struct qmp *q = open_ok(&s);
	assert_int_equal(qmp_execute(q, "stop", NULL, LONG_TIMEOUT, NULL, NULL), 0);
	expect_event(q, "STOP");
	expect_event(q, "RESUME");
	expect_event(q, "POWERDOWN");
	expect_event(q, "SHUTDOWN");
	assert_null(qmp_next_event(q));
	qmp_close(q);
	assert_int_equal(srv_finish(&s), 0);
}

static void test_mismatched_id(void **state UNUSED)
{
	struct server s = srv_start(script_mismatched_id);
	struct qmp *q = open_ok(&s);
	json_object *ret = NULL;
	assert_int_equal(qmp_execute(q, "query-status", NULL, LONG_TIMEOUT, &ret, NULL), 0);
	assert_string_equal(json_object_get_string(json_object_object_get(ret, "status")), "right");
	json_object_put(ret);
	qmp_close(q);
	assert_int_equal(srv_finish(&s), 0);
}

static void test_error_reply(void **state UNUSED)
{
	struct server s = srv_start(script_error_reply);
	struct qmp *q = open_ok(&s);
	struct hutch_error err = {0};
	json_object *ret = NULL;
	assert_int_equal(qmp_execute(q, "device_add", NULL, LONG_TIMEOUT, &ret, &err), -EREMOTEIO);
	assert_null(ret);
	assert_int_equal(err.code, EREMOTEIO);
	assert_string_equal(err.msg, "qmp device_add: GenericError: Duplicate ID 'net0'");
	/* An error reply is not a broken stream; the peer's control characters are not echoed. */
	assert_int_equal(qmp_execute(q, "device_del", NULL, LONG_TIMEOUT, NULL, &err), -EREMOTEIO);
	assert_string_equal(err.msg, "qmp device_del: DeviceNotFound: bad??[31mred");
	hutch_error_clear(&err);
	qmp_close(q);
	assert_int_equal(srv_finish(&s), 0);
}

static void test_eof_mid_reply(void **state UNUSED)
{
	struct server s = srv_start(script_eof_mid_reply);
	struct qmp *q = open_ok(&s);
	struct hutch_error err = {0};
	assert_int_equal(qmp_execute(q, "query-status", NULL, LONG_TIMEOUT, NULL, &err), -EPIPE);
	assert_string_equal(err.msg, "qmp: connection closed");
	/* Broken stays broken, without touching the socket. */
	assert_int_equal(qmp_execute(q, "query-status", json_object_new_object(), LONG_TIMEOUT, NULL, &err), -EPIPE);
	assert_int_equal(qmp_process_input(q, &err), -EPIPE);
	hutch_error_clear(&err);
	qmp_close(q);
	assert_int_equal(srv_finish(&s), 0);
}

static void test_no_reply_timeout(void **state UNUSED)
{
	struct server s = srv_start(script_no_reply);
	struct qmp *q = open_ok(&s);
	struct hutch_error err = {0};
	assert_int_equal(qmp_execute(q, "query-status", NULL, 50, NULL, &err), -ETIMEDOUT);
	assert_string_equal(err.msg, "qmp query-status: no reply within 50 ms");
	hutch_error_clear(&err);
	qmp_close(q);
	assert_int_equal(srv_finish(&s), 0);
}

static void test_late_reply_discarded(void **state UNUSED)
{
	struct server s = srv_start(script_late_reply);
	struct qmp *q = open_ok(&s);
	struct hutch_error err = {0};
	/* Zero timeout: the server has not even read the command yet. */
	assert_int_equal(qmp_execute(q, "query-status", NULL, 0, NULL, &err), -ETIMEDOUT);
	json_object *ret = NULL;
	assert_int_equal(qmp_execute(q, "query-name", NULL, LONG_TIMEOUT, &ret, &err), 0);
	assert_string_equal(json_object_get_string(json_object_object_get(ret, "name")), "web");
	json_object_put(ret);
	hutch_error_clear(&err);
	qmp_close(q);
	assert_int_equal(srv_finish(&s), 0);
}

static void test_oversized(void **state UNUSED)
{
	struct server s = srv_start(script_oversized);
	struct qmp *q = open_ok(&s);
	struct hutch_error err = {0};
	assert_int_equal(qmp_execute(q, "query-status", NULL, LONG_TIMEOUT, NULL, &err), -EMSGSIZE);
	assert_string_equal(err.msg, "qmp: message larger than 10 MiB");
	hutch_error_clear(&err);
	qmp_close(q);
	assert_int_equal(srv_finish(&s), 0);
}

static void test_bad_json(void **state UNUSED)
{
	struct server s = srv_start(script_bad_json);
	struct qmp *q = open_ok(&s);
	struct hutch_error err = {0};
	assert_int_equal(qmp_execute(q, "query-status", NULL, LONG_TIMEOUT, NULL, &err), -EPROTO);
	assert_string_equal(err.msg, "qmp: malformed message");
	hutch_error_clear(&err);
	qmp_close(q);
	assert_int_equal(srv_finish(&s), 0);
}

static void test_non_object(void **state UNUSED)
{
	struct server s = srv_start(script_non_object);
	struct qmp *q = open_ok(&s);
	struct hutch_error err = {0};
	assert_int_equal(qmp_execute(q, "query-status", NULL, LONG_TIMEOUT, NULL, &err), -EPROTO);
	assert_non_null(strstr(err.msg, "qmp: malformed message"));
	hutch_error_clear(&err);
	qmp_close(q);
	assert_int_equal(srv_finish(&s), 0);
}

static void expect_open_fails(void (*script)(int), uint64_t timeout_ms, int code, const char *msg)
{
	struct server s = srv_start(script);
	struct qmp *q = NULL;
	struct hutch_error err = {0};
	assert_int_equal(qmp_open(s.fd, timeout_ms, &q, &err), -code);
	assert_null(q);
	assert_non_null(strstr(err.msg, msg));
	hutch_error_clear(&err);
	/* qmp_open closed the fd, so the child sees EOF and exits. */
	assert_int_equal(srv_finish(&s), 0);
}

static void test_greeting_missing(void **state UNUSED)
{
	expect_open_fails(script_greeting_not_first, LONG_TIMEOUT, EPROTO, "expected the greeting");
	expect_open_fails(script_greeting_eof, LONG_TIMEOUT, EPIPE, "qmp: connection closed");
	expect_open_fails(script_greeting_silent, 20, ETIMEDOUT, "qmp: no greeting within 20 ms");
}

static void test_slow_bytes(void **state UNUSED)
{
	struct server s = srv_start(script_slow_bytes);
	struct qmp *q = open_ok(&s);
	qmp_close(q);
	assert_int_equal(srv_finish(&s), 0);
}

static void test_event_queue_bounded(void **state UNUSED)
{
	struct server s = srv_start(script_event_flood);
	struct qmp *q = open_ok(&s);
	assert_int_equal(qmp_execute(q, "cont", NULL, LONG_TIMEOUT, NULL, NULL), 0);
	/* The oldest five were dropped. */
	for (int i = 5; i < QMP_MAX_EVENTS + 5; i++) {
		char name[16];
		snprintf(name, sizeof(name), "E%d", i);
		expect_event(q, name);
	}
	assert_null(qmp_next_event(q));
	qmp_close(q);
	assert_int_equal(srv_finish(&s), 0);
}

static void test_process_input(void **state UNUSED)
{
	struct server s = srv_start(script_shutdown_then_eof);
	struct qmp *q = open_ok(&s);
	struct hutch_error err = {0};
	int r = 0;
	/* The monitor's loop: poll, then process; bounded so a bug fails instead of hanging. */
	for (int i = 0; i < 1000 && r == 0; i++) {
		struct pollfd pfd = {.fd = qmp_fd(q), .events = POLLIN};
		assert_true(poll(&pfd, 1, LONG_TIMEOUT) >= 0);
		r = qmp_process_input(q, &err);
	}
	assert_int_equal(r, -EPIPE);
	assert_string_equal(err.msg, "qmp: connection closed");
	expect_event(q, "POWERDOWN");
	expect_event(q, "SHUTDOWN");
	assert_null(qmp_next_event(q));
	hutch_error_clear(&err);
	qmp_close(q);
	assert_int_equal(srv_finish(&s), 0);
}

static void test_process_input_nothing_pending(void **state UNUSED)
{
	struct server s = srv_start(script_idle);
	struct qmp *q = open_ok(&s);
	/* A blocking fd with nothing to read: must return at once. */
	assert_int_equal(qmp_process_input(q, NULL), 0);
	assert_null(qmp_next_event(q));
	qmp_close(q);
	assert_int_equal(srv_finish(&s), 0);
}

/* ---- qmp_feed: the parser without sockets ---- */

static void test_feed_every_split(void **state UNUSED)
{
	const char *in = "\r\n{\"event\": \"A\"}{\"return\": {}, \"id\": 9}\n"
			 "{\"event\": \"B\", \"data\": {\"s\": \"x\\\"}{\"}}\r\n\r\n {\"unknown\": 1}";
	size_t len = strlen(in);
	for (size_t i = 0; i <= len; i++) {
		for (size_t j = i; j <= len; j++) {
			struct qmp *q = qmp_new(-1);
			assert_int_equal(qmp_feed(q, in, i, NULL), 0);
			assert_int_equal(qmp_feed(q, in + i, j - i, NULL), 0);
			assert_int_equal(qmp_feed(q, in + j, len - j, NULL), 0);
			expect_event(q, "A");
			expect_event(q, "B");
			assert_null(qmp_next_event(q));
			qmp_close(q);
		}
	}
}

static void test_feed_size_limit(void **state UNUSED)
{
	/* Exactly QMP_MAX_MESSAGE bytes is allowed; one more is not. */
	const char *head = "{\"event\": \"BIG\", \"data\": \"";
	const char *tail = "\"}";
	for (int extra = 0; extra <= 1; extra++) {
		size_t len = QMP_MAX_MESSAGE + (size_t)extra;
		char *big = xmalloc(len);
		memset(big, 'a', len);
		memcpy(big, head, strlen(head));
		memcpy(big + len - strlen(tail), tail, strlen(tail));
		struct qmp *q = qmp_new(-1);
		struct hutch_error err = {0};
		int r = 0;
		for (size_t off = 0; off < len && r == 0; off += 65536)
			r = qmp_feed(q, big + off, len - off < 65536 ? len - off : 65536, &err);
		if (extra == 0) {
			assert_int_equal(r, 0);
			expect_event(q, "BIG");
		} else {
			assert_int_equal(r, -EMSGSIZE);
			assert_string_equal(err.msg, "qmp: message larger than 10 MiB");
			/* Sticky. */
			assert_int_equal(qmp_feed(q, "{}", 2, NULL), -EMSGSIZE);
		}
		hutch_error_clear(&err);
		qmp_close(q);
		free(big);
	}
}

static void test_feed_malformed(void **state UNUSED)
{
	static const char *const bad[] = {
		"]",
		"{\"a\" 1}",
		"{\"event\": \"A\"",
		"nul",
		"{'x': \x01}",
		"42 ",
		"null\n",
		"\"s\"",
		"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
		"{\"a\": \x00}",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct qmp *q = qmp_new(-1);
		size_t len = i == ARRAY_SIZE(bad) - 1 ? 8 : strlen(bad[i]);
		int r = qmp_feed(q, bad[i], len, NULL);
		/* Incomplete input is fine until the peer says more. */
		if (i == 2 || i == 3)
			assert_int_equal(r, 0);
		else
			assert_int_equal(r, -EPROTO);
		qmp_close(q);
	}
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_execute_ok),	    cmocka_unit_test(test_nonblocking_fd),
		cmocka_unit_test(test_events_before_reply), cmocka_unit_test(test_mismatched_id),
		cmocka_unit_test(test_error_reply),	    cmocka_unit_test(test_eof_mid_reply),
		cmocka_unit_test(test_no_reply_timeout),    cmocka_unit_test(test_late_reply_discarded),
		cmocka_unit_test(test_oversized),	    cmocka_unit_test(test_bad_json),
		cmocka_unit_test(test_non_object),	    cmocka_unit_test(test_greeting_missing),
		cmocka_unit_test(test_slow_bytes),	    cmocka_unit_test(test_event_queue_bounded),
		cmocka_unit_test(test_process_input),	    cmocka_unit_test(test_process_input_nothing_pending),
		cmocka_unit_test(test_feed_every_split),    cmocka_unit_test(test_feed_size_limit),
		cmocka_unit_test(test_feed_malformed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
