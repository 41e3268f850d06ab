/* fake-qemu: stands in for qemu-system-x86_64 (HUTCH_QEMU=<a link to it named
 * qemu-system-x86_64>) in the QMP fault tests. Like QEMU under hutch's monitor, it gets a listening
 * QMP socket on fd 3 and a listening agent socket on fd 4; it ignores its arguments and plays the
 * mode named by FAKE_QEMU_MODE:
 *   ok             greeting, {"return": {}} to everything, and a guest agent that says HELLO and
 *                  powers off on POWEROFF; "quit" answers and exits
 *   events-first   like ok, but STOP and RESUME events precede every reply
 *   event-flood    like ok, but 20000 events precede the capabilities reply
 *   no-greeting    accepts and never says a word
 *   bad-greeting   the first message is a reply, not the greeting
 *   eof-mid-reply  the capabilities reply is cut in half and the connection closed
 *   no-reply       greets, then never answers a command
 *   oversized      the capabilities reply is a string of 11 MiB that never ends
 *   bad-json       the capabilities reply is not JSON
 *   crash          writes a line to stderr (qemu.log) and exits 1 before accepting
 * In every mode it exits when its parent (the monitor) dies: PR_SET_PDEATHSIG, and a poll on
 * getppid() for the window before the prctl. It writes one line per event to stderr. */
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include "proto.h"
#include "util.h"

#define QMP_LISTEN 3
#define AGENT_LISTEN 4

static pid_t parent;
static const char *mode = "ok";

static bool is(const char *m) { return strcmp(mode, m) == 0; }

static void say(const char *fmt, ...) _printf_(1, 2);
static void say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "fake-qemu[%s]: ", mode);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void check_parent(void)
{
	if (getppid() != parent) {
		say("parent died, exiting");
		_exit(0);
	}
}

/* Sleep until killed or orphaned. */
static _Noreturn void linger(void)
{
	for (;;) {
		poll(NULL, 0, 200);
		check_parent();
	}
}

static void send_str(int fd, const char *s)
{
	if (fd >= 0 && write_all(fd, s, strlen(s)) < 0)
		say("write: %s", strerror(errno));
}

static int accept_on(int lfd)
{
	for (;;) {
		struct pollfd p = {.fd = lfd, .events = POLLIN};
		int r = poll(&p, 1, 200);
		check_parent();
		if (r <= 0)
			continue;
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			return fd;
		if (errno != EINTR && errno != EAGAIN) {
			say("accept on fd %d: %s", lfd, strerror(errno));
			exit(1);
		}
	}
}

static void send_events(int fd, int n)
{
	for (int i = 0; i < n; i++)
		send_str(fd, i % 2 ? "{\"event\": \"RESUME\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 1}}\r\n"
				   : "{\"event\": \"STOP\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 0}}\r\n");
}

static void reply(int fd, json_object *id, const char *ret)
{
	_cleanup_free_ char *s = xasprintf("{\"return\": %s, \"id\": %s}\r\n", ret,
					   id ? json_object_to_json_string_ext(id, JSON_C_TO_STRING_PLAIN) : "null");
	send_str(fd, s);
}

/* ---- the guest agent: HELLO, then power off on POWEROFF ---- */

static int agent_fd = -1;
static bool agent_greeted;
static struct proto_reader agent_rd;

static void agent_hello(void)
{
	agent_greeted = true;
	agent_fd = accept_on(AGENT_LISTEN);
	proto_reader_init(&agent_rd);
	struct proto_buf b = {0}, f = {0};
	proto_encode_hello(&b, PROTO_VERSION, 0, "6.1.0-fake");
	proto_frame_append(&f, MSG_HELLO, 0, b.data, b.len);
	if (write_all(agent_fd, f.data, f.len) < 0)
		say("agent write: %s", strerror(errno));
	proto_buf_free(&b);
	proto_buf_free(&f);
	say("agent said HELLO");
}

static void agent_readable(void)
{
	long n = proto_reader_read_fd(&agent_rd, agent_fd);
	if (n <= 0) {
		say("agent channel closed");
		close(agent_fd);
		agent_fd = -1;
		return;
	}
	struct proto_frame fr;
	while (proto_reader_next(&agent_rd, &fr) == 1) {
		if (fr.type == MSG_POWEROFF) {
			say("agent got POWEROFF: the guest powers off");
			exit(0);
		}
		say("agent ignores a %s frame", proto_type_name(fr.type));
	}
}

/* ---- QMP ---- */

struct conn {
	int fd;
	struct strbuf line;
};

/* Reads what is there; returns false on EOF. Complete lines are handled by handle_line. */
static bool qmp_readable(struct conn *c, void (*handle_line)(struct conn *, json_object *))
{
	char buf[4096];
	ssize_t n = read(c->fd, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	if (n <= 0)
		return false;
	for (ssize_t i = 0; i < n && c->fd >= 0; i++) {
		if (buf[i] != '\n') {
			if (c->line.len < 65536)
				strbuf_addch(&c->line, buf[i]);
			continue;
		}
		json_object *cmd = json_tokener_parse(strbuf_str(&c->line));
		strbuf_reset(&c->line);
		handle_line(c, cmd);
		json_object_put(cmd);
	}
	return c->fd >= 0;
}

static bool negotiated;

static void handle_cmd(struct conn *c, json_object *cmd)
{
	const char *name = json_object_get_string(json_object_object_get(cmd, "execute"));
	json_object *id = json_object_object_get(cmd, "id");
	say("qmp command %s", name ? name : "(none)");
	if (!negotiated) {
		negotiated = true;
		if (is("no-reply"))
			return;
		if (is("eof-mid-reply")) {
			send_str(c->fd, "{\"return\": {}, \"i");
			say("closing the QMP connection mid-reply");
			close(c->fd);
			c->fd = -1;
			linger();
		}
		if (is("bad-json")) {
			send_str(c->fd, "{\"return\": }{]\r\n");
			return;
		}
		if (is("oversized")) {
			static char chunk[65536];
			memset(chunk, 'x', sizeof(chunk));
			send_str(c->fd, "{\"return\": {\"x\": \"");
			for (int i = 0; i < 11 * 16; i++)
				if (write_all(c->fd, chunk, sizeof(chunk)) < 0) {
					say("oversized reply: write: %s", strerror(errno));
					break;
				}
			linger();
		}
		if (is("event-flood"))
			send_events(c->fd, 20000);
	}
	if (is("no-reply"))
		return;
	if (is("events-first"))
		send_events(c->fd, 2);
	bool quit = name && !strcmp(name, "quit");
	reply(c->fd, id, name && !strcmp(name, "query-status") ? "{\"status\": \"running\", \"running\": true}" : "{}");
	if (quit) {
		send_str(c->fd,
			 "{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": false, \"reason\": \"host-qmp-quit\"}, "
			 "\"timestamp\": {\"seconds\": 2, \"microseconds\": 0}}\r\n");
		say("quit");
		exit(0);
	}
}

int main(int argc, char **argv)
{
	parent = getppid();
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	check_parent();
	signal(SIGPIPE, SIG_IGN);
	const char *m = getenv("FAKE_QEMU_MODE");
	if (m && *m)
		mode = m;
	static const char *const modes[] = {"ok",	    "events-first",  "event-flood", "no-greeting",
					    "bad-greeting", "eof-mid-reply", "no-reply",    "oversized",
					    "bad-json",	    "crash"};
	bool known = false;
	for (size_t i = 0; i < ARRAY_SIZE(modes); i++)
		known |= is(modes[i]);
	if (!known) {
		say("unknown FAKE_QEMU_MODE");
		return 2;
	}
	say("started with %d arguments", argc - 1);
	if (is("crash")) {
		say("simulated crash at startup");
		return 1;
	}
	struct conn c = {.fd = accept_on(QMP_LISTEN), .line = STRBUF_INIT};
	say("QMP client connected");
	if (is("no-greeting"))
		linger();
	if (is("bad-greeting"))
		send_str(c.fd, "{\"return\": {}}\r\n");
	send_str(c.fd, "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, "
		       "\"package\": \"fake-qemu\"}, \"capabilities\": [\"oob\"]}}\r\n");
	bool with_agent = is("ok") || is("events-first") || is("event-flood");
	for (;;) {
		struct pollfd p[2] = {{.fd = c.fd, .events = POLLIN}, {.fd = agent_fd, .events = POLLIN}};
		int r = poll(p, 2, 200);
		check_parent();
		if (r < 0 && errno != EINTR)
			return 1;
		if (p[0].revents && !qmp_readable(&c, handle_cmd)) {
			say("QMP client went away; waiting for another");
			if (c.fd >= 0)
				close(c.fd);
			c.fd = accept_on(QMP_LISTEN);
		}
		if (p[1].revents && agent_fd >= 0)
			agent_readable();
		if (with_agent && negotiated && !agent_greeted)
			agent_hello();
	}
}
