/* A clone's own identity (MSG_IDENTITY). A VM restored from a warm template wakes up with the
 * template's RNG state, clock, hostname and machine-id, shared with every other clone: the host
 * sends fresh ones right after the restore, before any program runs. */
#include "agent.h"
#include "etc_hosts.h"

/* <linux/random.h>: musl ships no kernel headers, and these are ABI. */
#define HUTCH_RNDADDENTROPY _IOW('R', 0x03, int[2])
#define HUTCH_RNDRESEEDCRNG _IO('R', 0x07)

/* RNDADDENTROPY credits the bytes (the host's own RNG is as good as the guest's), then
 * RNDRESEEDCRNG makes the CRNG reseed from the pool now, not at its next timed reseed: the very
 * next read of /dev/urandom differs from every other clone's. */
static int reseed(const uint8_t *bytes, uint32_t n)
{
	struct {
		int entropy_count;
		int buf_size;
		uint8_t buf[PROTO_IDENTITY_ENTROPY_MAX];
	} info;
	if (n > sizeof(info.buf))
		n = sizeof(info.buf);
	info.entropy_count = (int)n * 8;
	info.buf_size = (int)n;
	memcpy(info.buf, bytes, n);
	int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int r = ioctl(fd, HUTCH_RNDADDENTROPY, &info);
	if (r == 0)
		r = ioctl(fd, HUTCH_RNDRESEEDCRNG);
	close(fd);
	memset(&info, 0, sizeof(info));
	return r;
}

static int write_machine_id(const char *id)
{
	mkdir("/etc", 0755);
	char line[40];
	snprintf(line, sizeof(line), "%s\n", id);
	return write_text_atomic("/etc/machine-id", "/etc/.machine-id.tmp", line, 0444);
}

/* path (mode 0644) as text, atomically, if it exists already: an image that has it. */
static int replace_file(const char *path, const char *tmp, const char *text)
{
	return access(path, F_OK) < 0 ? 0 : write_text_atomic(path, tmp, text, 0644);
}

/* The clone's hostname where the image keeps it on disk too: /etc/hostname (systemd reads it at
 * boot, and programs read the file), and the template's name on /etc/hosts' 127.0.1.1 line. */
static int write_hostname_files(const char *old, const char *new)
{
	char line[64 + 2]; /* the identity's hostname is at most 64 bytes */
	snprintf(line, sizeof(line), "%s\n", new);
	int r = replace_file("/etc/hostname", "/etc/.hostname.tmp", line);
	int fd = open("/etc/hosts", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return r;
	char buf[65536];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0 || n == (ssize_t)sizeof(buf) - 1)
		return r; /* empty, unreadable, or too large to be a hosts file we should rewrite */
	buf[n] = 0;
	char *text = etc_hosts_rename(buf, old, new);
	if (text && replace_file("/etc/hosts", "/etc/.hosts.tmp", text) < 0)
		r = -1;
	free(text);
	return r;
}

void handle_identity(const struct proto_frame *f)
{
	struct proto_identity id;
	if (proto_decode_identity(f, &id) < 0) {
		logmsg("identity: malformed message ignored");
		return;
	}
	const char *failed[5];
	int nf = 0;
	if (id.entropy_len && reseed(id.entropy, id.entropy_len) < 0)
		failed[nf++] = "rng";
	struct timespec ts = {.tv_sec = (time_t)(id.realtime_ns / 1000000000ull),
			      .tv_nsec = (long)(id.realtime_ns % 1000000000ull)};
	if (clock_settime(CLOCK_REALTIME, &ts) < 0)
		failed[nf++] = "clock";
	char before[65] = "";
	gethostname(before, sizeof(before) - 1);
	if (sethostname(id.hostname, strlen(id.hostname)) < 0)
		failed[nf++] = "hostname";
	else if (strcmp(before, id.hostname) != 0 && write_hostname_files(before, id.hostname) < 0)
		failed[nf++] = "hostname files";
	if (write_machine_id(id.machine_id) < 0)
		failed[nf++] = "machine-id";
	for (int i = 0; i < nf; i++)
		logmsg("identity: setting the %s failed: %s", failed[i], strerror(errno));
	memset(id.entropy, 0, id.entropy_len);
	proto_identity_free(&id);
}
