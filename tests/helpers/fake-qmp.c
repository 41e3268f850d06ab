/* fake-qmp SOCKET_PATH MODE: a scripted QMP server for integration fault tests. It serves one
 * client at a time, like QEMU, until killed or until it answers "quit".
 *   ok             greeting, capabilities, {"return": {}} to everything (query-status: running)
 *   eof-mid-reply  the first command after capabilities gets half a reply, then the socket closes
 *   no-reply       commands after capabilities are read and never answered
 *   oversized      the first reply is a string of 11 MiB that never ends
 *   bad-json       the first reply is not JSON
 *   events-first   STOP and RESUME events precede every reply */
#include <json-c/json.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "util.h"

static void send_str(int fd, const char *s)
{
	(void)write_all(fd, s, strlen(s));
}

/* One command per line, as hutch sends them. NULL on EOF or garbage. */
static json_object *recv_cmd(int fd)
{
	_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
	char c;
	while (sb.len < 65536) {
		ssize_t n = read(fd, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return NULL;
		if (c == '\n')
			return json_tokener_parse(strbuf_str(&sb));
		strbuf_addch(&sb, c);
	}
	return NULL;
}

static void reply(int fd, json_object *id, const char *ret)
{
	_cleanup_free_ char *s = xasprintf("{\"return\": %s, \"id\": %s}\r\n", ret,
					   json_object_to_json_string_ext(id, JSON_C_TO_STRING_PLAIN));
	send_str(fd, s);
}

/* Returns true when the server should exit (after "quit"). */
static bool serve(int fd, const char *mode)
{
	send_str(fd, "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, "
		     "\"package\": \"fake-qmp\"}, \"capabilities\": [\"oob\"]}}\r\n");
	bool negotiated = false;
	json_object *cmd;
	while ((cmd = recv_cmd(fd))) {
		const char *name = json_object_get_string(json_object_object_get(cmd, "execute"));
		json_object *id = json_object_object_get(cmd, "id");
		bool quit = name && !strcmp(name, "quit");
		if (!negotiated || !strcmp(mode, "ok") || !strcmp(mode, "events-first")) {
			if (negotiated && !strcmp(mode, "events-first"))
				send_str(fd, "{\"event\": \"STOP\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 0}}\r\n"
					     "{\"event\": \"RESUME\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 1}}\r\n");
			reply(fd, id, name && !strcmp(name, "query-status") ? "{\"status\": \"running\", \"running\": true}" : "{}");
			negotiated = true;
			if (quit)
				send_str(fd, "{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": false, \"reason\": \"host-qmp-quit\"}, "
					     "\"timestamp\": {\"seconds\": 2, \"microseconds\": 0}}\r\n");
			json_object_put(cmd);
			if (quit)
				return true;
			continue;
		}
		json_object_put(cmd);
		if (!strcmp(mode, "eof-mid-reply")) {
			send_str(fd, "{\"return\": {\"status\": \"run");
			return false;
		}
		if (!strcmp(mode, "oversized")) {
			static char chunk[65536];
			memset(chunk, 'x', sizeof(chunk));
			send_str(fd, "{\"return\": {\"x\": \"");
			for (int i = 0; i < 11 * 16; i++)
				if (write_all(fd, chunk, sizeof(chunk)) < 0)
					break;
			return false;
		}
		if (!strcmp(mode, "bad-json")) {
			send_str(fd, "{\"return\": }{]\r\n");
			continue;
		}
		/* no-reply: swallow the command. */
	}
	return false;
}

int main(int argc, char **argv)
{
	static const char *const modes[] = {"ok", "eof-mid-reply", "no-reply", "oversized", "bad-json", "events-first"};
	bool known = false;
	for (size_t i = 0; argc == 3 && i < ARRAY_SIZE(modes); i++)
		known |= !strcmp(argv[2], modes[i]);
	if (!known) {
		fprintf(stderr, "usage: fake-qmp SOCKET_PATH ok|eof-mid-reply|no-reply|oversized|bad-json|events-first\n");
		return 2;
	}
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(argv[1]) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "fake-qmp: socket path too long: '%s'\n", argv[1]);
		return 2;
	}
	strcpy(sa.sun_path, argv[1]);
	signal(SIGPIPE, SIG_IGN);
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	unlink(argv[1]);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 4) < 0) {
		fprintf(stderr, "fake-qmp: cannot listen on '%s': %s\n", argv[1], strerror(errno));
		return 1;
	}
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "fake-qmp: accept: %s\n", strerror(errno));
			return 1;
		}
		bool done = serve(fd, argv[2]);
		close(fd);
		if (done)
			break;
	}
	close(lfd);
	unlink(argv[1]);
	return 0;
}
