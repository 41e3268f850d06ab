#ifdef HAVE_LIBVIRT
#include "virt_channel.h"

#include "client.h"
#include "proto.h"
#include "virt_conn.h"

#include <libvirt/libvirt.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>

#include "lazyvirt.h"

/* One thread moves bytes both ways between the libvirt stream (non-blocking) and our end of a
 * socketpair, so that the agent looks like any other fd to the session code. It ends, closing its
 * end, when either side ends: the caller then reads EOF. */
struct pump {
	virConnectPtr conn;
	virDomainPtr dom;
	virStreamPtr st;
	int fd;
};

/* Our caller may close its end at any time (stop closes it after POWEROFF): EPIPE, never SIGPIPE,
 * which would kill the whole hutch process from this thread. */
static int send_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct pollfd pf = {.fd = fd, .events = POLLOUT};
			poll(&pf, 1, 1000);
			continue;
		}
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static void *pump_thread(void *arg)
{
	struct pump *p = arg;
	char buf[65536];
	bool done = false, finish = false, reader_gone = false;
	uint64_t checked = now_ms();
	while (!done) {
		/* a dead connection can leave a non-blocking stream saying "no data yet" forever */
		if (now_ms() - checked >= 1000) {
			checked = now_ms();
			if (virConnectIsAlive(p->conn) != 1)
				break;
		}
		int got = virStreamRecv(p->st, buf, sizeof(buf));
		if (got > 0) {
			/* our side may have closed right after writing (a POWEROFF): what it wrote is still
			 * in the socket, so keep reading it until EOF and drop what the guest says meanwhile */
			if (!reader_gone && send_all(p->fd, buf, (size_t)got) < 0)
				reader_gone = true;
			continue;
		}
		if (got == 0 || got == -1)
			break; /* the guest side closed, or the connection is gone */
		struct pollfd pf = {.fd = p->fd, .events = POLLIN};
		int r = poll(&pf, 1, 5);
		if (r < 0 && errno != EINTR)
			break;
		if (r > 0) {
			ssize_t n = read(p->fd, buf, sizeof(buf));
			if (n == 0) {
				finish = true; /* our side is done: what it sent (a POWEROFF, say) still goes out */
				break;
			}
			if (n < 0)
				break;
			size_t off = 0;
			while (off < (size_t)n && !done) {
				int s = virStreamSend(p->st, buf + off, (size_t)n - off);
				if (s > 0)
					off += (size_t)s;
				else if (s == -2)
					usleep(1000);
				else
					done = true;
			}
		}
	}
	if (!finish || virStreamFinish(p->st) < 0)
		virStreamAbort(p->st);
	virStreamFree(p->st);
	virDomainFree(p->dom);
	virConnectClose(p->conn);
	close(p->fd);
	free(p);
	return NULL;
}

static int send_hello_query(int fd)
{
	struct proto_buf b = {0};
	proto_encode_hello(&b, PROTO_VERSION, PROTO_HELLO_QUERY, "");
	int r = frame_write(fd, MSG_HELLO, 0, b.data, b.len);
	proto_buf_free(&b);
	return r;
}

/* Until the agent's HELLO: ask for it now and every second (the agent says it unasked while booting). */
static int wait_hello(int fd, uint64_t deadline, char *ret_release, size_t release_len, struct hutch_error *err)
{
	struct proto_reader rd;
	proto_reader_init(&rd);
	uint64_t asked = 0;
	int r = -ETIMEDOUT;
	for (;;) {
		uint64_t t = now_ms();
		if (t >= deadline)
			break;
		if (t - asked >= 1000) {
			if (send_hello_query(fd) < 0) {
				r = -EPIPE;
				break;
			}
			asked = t;
		}
		struct pollfd p = {.fd = fd, .events = POLLIN};
		uint64_t wait = deadline - t < 1000 ? deadline - t : 1000;
		if (poll(&p, 1, (int)wait) <= 0)
			continue;
		long n = proto_reader_read_fd(&rd, fd);
		if (n <= 0) {
			r = -EPIPE;
			break;
		}
		struct proto_frame f;
		int k;
		while ((k = proto_reader_next(&rd, &f)) == 1) {
			if (f.type != MSG_HELLO)
				continue;
			struct proto_hello h;
			if (proto_decode_hello(&f, &h) < 0)
				continue;
			if (ret_release)
				snprintf(ret_release, release_len, "%s", h.kernel_release ? h.kernel_release : "");
			proto_hello_free(&h);
			/* the answer (caps 0): the agent stops repeating itself */
			struct proto_buf b = {0};
			proto_encode_hello(&b, PROTO_VERSION, 0, "");
			frame_write(fd, MSG_HELLO, 0, b.data, b.len);
			proto_buf_free(&b);
			proto_reader_free(&rd);
			return 0;
		}
		if (k < 0) {
			proto_reader_free(&rd);
			return hutch_error_set(err, EPROTO, "the guest agent sent something malformed");
		}
	}
	proto_reader_free(&rd);
	if (r == -EPIPE)
		return hutch_error_set(err, EPIPE, "the agent channel closed before the agent said HELLO");
	return hutch_error_set(err, ETIMEDOUT, "no HELLO from the guest agent in time");
}

/* The channel as a socketpair end, pumped by a thread of its own. */
static int channel_pump(void *conn, void *dom, int *ret_fd, struct hutch_error *err)
{
	virStreamPtr st = virStreamNew(conn, VIR_STREAM_NONBLOCK);
	if (!st)
		return hutch_error_set(err, EIO, "cannot make a libvirt stream: %s", virt_last_error("unknown error"));
	if (virDomainOpenChannel(dom, "org.hutch.agent.0", st, 0) < 0) {
		const char *why = virt_last_error("unknown error");
		int code = strstr(why, "already open") || strstr(why, "in use") ? EBUSY : EIO;
		int r = hutch_error_set(err, code, "cannot open the agent channel: %s", why);
		virStreamFree(st);
		return r;
	}
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
		virStreamAbort(st);
		virStreamFree(st);
		return hutch_error_set(err, errno, "socketpair: %s", strerror(errno));
	}
	struct pump *p = xcalloc(1, sizeof(*p));
	/* the pump owns references of its own: the caller may close its connection first */
	virConnectRef(conn);
	virDomainRef(dom);
	*p = (struct pump){.conn = conn, .dom = dom, .st = st, .fd = sp[1]};
	pthread_t t;
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	int pr = pthread_create(&t, &a, pump_thread, p);
	pthread_attr_destroy(&a);
	if (pr != 0) {
		virStreamAbort(st);
		virStreamFree(st);
		virDomainFree(dom);
		virConnectClose(conn);
		close(sp[0]);
		close(sp[1]);
		free(p);
		return hutch_error_set(err, pr, "cannot start the channel thread");
	}
	*ret_fd = sp[0];
	return 0;
}

int virt_channel_open(void *conn, void *dom, uint64_t timeout_ms, int *ret_fd, char *ret_release, size_t release_len,
		      struct hutch_error *err)
{
	int fd = -1;
	int r = channel_pump(conn, dom, &fd, err);
	if (r < 0)
		return r;
	if (timeout_ms == 0) {
		/* no wait: our answer to a HELLO the agent may or may not send on this connection, so that
		 * what the caller writes next counts (the agent ignores everything else before it) */
		struct proto_buf b = {0};
		proto_encode_hello(&b, PROTO_VERSION, 0, "");
		int w = frame_write(fd, MSG_HELLO, 0, b.data, b.len);
		proto_buf_free(&b);
		if (w < 0) {
			close(fd);
			return hutch_error_set(err, EPIPE, "the agent channel closed at once");
		}
		*ret_fd = fd;
		return 0;
	}
	/* While a guest boots, libvirt's stream of the channel can end (the guest's side of the port
	 * closes and opens again as its programs start): open it again until the deadline. */
	uint64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		r = wait_hello(fd, deadline, ret_release, release_len, err);
		if (r == 0) {
			*ret_fd = fd;
			return 0;
		}
		close(fd);
		fd = -1;
		if (r == -EPIPE && virConnectIsAlive(conn) != 1) {
			hutch_error_clear(err);
			return hutch_error_set(err, ECONNRESET,
					       "the connection to libvirt was lost before the agent said HELLO");
		}
		int state = 0;
		if (r != -EPIPE || now_ms() + 100 >= deadline || virDomainGetState(dom, &state, NULL, 0) < 0 ||
		    state != VIR_DOMAIN_RUNNING)
			return r;
		hutch_error_clear(err);
		usleep(100 * 1000); /* the HELLO is waited for: a micro VM's agent is up within seconds */
		r = channel_pump(conn, dom, &fd, err);
		if (r < 0)
			return r;
	}
}
#endif
