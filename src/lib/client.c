#include "client.h"

#include "proto.h"
#include "unixsock.h"

#include <poll.h>
#include <string.h>
#include <sys/socket.h>

int monitor_connect(const struct store *st, const char *name, int *ret_fd, struct hutch_error *err)
{
	_cleanup_free_ char *path = store_run_file(st, name, "monitor.sock");
	struct hutch_error e = {0};
	int fd = unix_connect(path, &e);
	if (fd < 0) {
		int code = e.code, r;
		if (code == ENOENT || code == ECONNREFUSED)
			r = hutch_error_set(err, ENOTCONN, "not running");
		else if (code == ENAMETOOLONG)
			r = hutch_error_set(err, code, "%s", e.msg);
		else
			r = hutch_error_set(err, code, "cannot reach the monitor at '%s': %s", path, strerror(code));
		hutch_error_clear(&e);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

int frame_write(int fd, uint8_t type, uint32_t channel, const void *p, size_t len)
{
	struct proto_buf b = {0};
	if (proto_frame_append(&b, type, channel, p, len) < 0) {
		proto_buf_free(&b);
		return -EMSGSIZE;
	}
	ssize_t n;
	size_t off = 0;
	while (off < b.len) {
		n = send(fd, b.data + off, b.len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			proto_buf_free(&b);
			return -e;
		}
		off += (size_t)n;
	}
	proto_buf_free(&b);
	return 0;
}

int monitor_request(int fd, json_object *req, uint64_t timeout_ms, json_object **ret, struct hutch_error *err)
{
	const char *s = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	int r = frame_write(fd, MSG_CTL, 0, s, strlen(s));
	json_object_put(req);
	if (r < 0)
		return hutch_error_set(err, -r, "cannot talk to the monitor: %s", strerror(-r));
	struct proto_reader rd;
	proto_reader_init(&rd);
	uint64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		struct proto_frame f;
		int k;
		while ((k = proto_reader_next(&rd, &f)) == 1) {
			if (f.type != MSG_CTL || f.channel != 0)
				continue;
			json_tokener *tok = json_tokener_new();
			json_object *o = json_tokener_parse_ex(tok, (const char *)f.payload, (int)f.len);
			json_tokener_free(tok);
			proto_reader_free(&rd);
			if (!o)
				return hutch_error_set(err, EPROTO, "malformed reply from the monitor");
			*ret = o;
			return 0;
		}
		if (k < 0)
			break;
		uint64_t t = now_ms();
		if (t >= deadline) {
			proto_reader_free(&rd);
			return hutch_error_set(err, ETIMEDOUT, "the monitor did not answer within %llu s",
					       (unsigned long long)(timeout_ms / 1000));
		}
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int pr = poll(&p, 1, (int)(deadline - t));
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			continue;
		long n = proto_reader_read_fd(&rd, fd);
		if (n <= 0)
			break;
	}
	proto_reader_free(&rd);
	return hutch_error_set(err, EPIPE, "the monitor closed the connection");
}

int wait_stopped(const struct store *st, const char *name, uint64_t timeout_ms)
{
	uint64_t deadline = now_ms() + timeout_ms;
	while (store_is_running(st, name)) {
		if (now_ms() >= deadline)
			return -ETIMEDOUT;
		usleep(10000);
	}
	return 0;
}
