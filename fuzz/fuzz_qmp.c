/* libFuzzer target for the QMP reader. The first byte picks how the rest is delivered:
 *   even: qmp_feed() in chunks whose sizes come from the input, events drained as they appear;
 *   odd:  the bytes are what a peer sends on a socket that then closes; qmp_open() and one
 *         qmp_execute() run against it (EOF bounds every wait). */
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>

#include "qmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void drain(struct qmp *q)
{
	json_object *ev;
	while ((ev = qmp_next_event(q))) {
		(void)json_object_to_json_string(ev);
		json_object_put(ev);
	}
}

static void fuzz_feed(const uint8_t *data, size_t size)
{
	struct qmp *q = qmp_new(-1);
	struct hutch_error err = {0};
	while (size > 0) {
		size_t chunk = 1 + data[0] % 64;
		data++, size--;
		if (chunk > size)
			chunk = size;
		int r = qmp_feed(q, data, chunk, &err);
		data += chunk, size -= chunk;
		if (r < 0) {
			/* A broken reader stays broken. */
			if (qmp_feed(q, "{}", 2, NULL) != r)
				__builtin_trap();
			break;
		}
		drain(q);
	}
	drain(q);
	hutch_error_clear(&err);
	qmp_close(q);
}

static void fuzz_socket(const uint8_t *data, size_t size)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return;
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	while (size > 0) {
		ssize_t n = send(sv[1], data, size, MSG_NOSIGNAL);
		if (n <= 0)
			break; /* socket buffer full: the rest is cut off */
		data += n, size -= (size_t)n;
	}
	shutdown(sv[1], SHUT_WR);
	struct qmp *q = NULL;
	struct hutch_error err = {0};
	if (qmp_open(sv[0], 1000, &q, &err) == 0) {
		json_object *ret = NULL;
		if (qmp_execute(q, "query-status", NULL, 1000, &ret, &err) == 0)
			json_object_put(ret);
		qmp_process_input(q, &err);
		drain(q);
		qmp_close(q);
	}
	hutch_error_clear(&err);
	close(sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] & 1)
		fuzz_socket(data + 1, size - 1);
	else
		fuzz_feed(data + 1, size - 1);
	return 0;
}
