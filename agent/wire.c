/* The agent port and its frames: logging, sending, HELLO and PONG. */
#include "agent.h"

void logmsg(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "hutch-agent: %s\n", buf);
}

uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				struct pollfd pfd = {.fd = fd, .events = POLLOUT};
				poll(&pfd, 1, 1000);
				continue;
			}
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int write_text_atomic(const char *path, const char *tmp, const char *text, mode_t mode)
{
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -1;
	int r = write_all(fd, text, strlen(text));
	if (r == 0)
		r = fsync(fd);
	close(fd);
	if (r == 0)
		r = rename(tmp, path);
	if (r < 0) {
		int e = errno;
		unlink(tmp);
		errno = e;
	}
	return r;
}

void send_frame(uint8_t type, uint32_t channel, const void *payload, size_t len)
{
	struct proto_buf b = {0};
	if (proto_frame_append(&b, type, channel, payload, len) == 0 && g.port >= 0)
		if (write_all(g.port, b.data, b.len) < 0)
			logmsg("write to host failed: %s", strerror(errno));
	proto_buf_free(&b);
}

void send_buf(uint8_t type, uint32_t channel, struct proto_buf *payload)
{
	send_frame(type, channel, payload->data, payload->len);
	proto_buf_free(payload);
}

void send_error(uint32_t channel, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	struct proto_buf b = {0};
	proto_put_str(&b, msg);
	send_buf(MSG_ERROR, channel, &b);
}

/* ---- the agent port ---- */

int open_port(void)
{
	int fd = open("/dev/virtio-ports/" PROTO_AGENT_PORT, O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd >= 0)
		return fd;
	/* No udev in the micro VM: find the vport whose name matches, devtmpfs made its node. */
	DIR *d = opendir("/sys/class/virtio-ports");
	if (!d)
		return -1;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || strlen(de->d_name) > 32)
			continue;
		char p[128];
		snprintf(p, sizeof(p), "/sys/class/virtio-ports/%.32s/name", de->d_name);
		char *name = read_small_file(p, 128);
		bool ours = name && strncmp(name, PROTO_AGENT_PORT, strlen(PROTO_AGENT_PORT)) == 0;
		free(name);
		if (ours) {
			snprintf(p, sizeof(p), "/dev/%.32s", de->d_name);
			fd = open(p, O_RDWR | O_CLOEXEC | O_NOCTTY);
			break;
		}
	}
	closedir(d);
	return fd;
}

/* A PONG echoes the PING's token (at most 8 bytes). */
void send_pong(const struct proto_frame *ping)
{
	send_frame(MSG_PONG, ping->channel, ping->payload, ping->len > 8 ? 8 : ping->len);
}

void send_hello(void)
{
	struct utsname u;
	uname(&u);
	g.hello_ms = mono_ms();
	struct proto_buf b = {0};
	proto_encode_hello(&b, PROTO_VERSION, 0, u.release);
	send_buf(MSG_HELLO, 0, &b);
}
