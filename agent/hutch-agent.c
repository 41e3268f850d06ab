/* hutch-agent: the guest side of hutch.
 *
 * In the micro template it is PID 1: it mounts the API filesystems, loads the virtio modules listed
 * in /lib/modules/$(uname -r)/hutch.load, reaps zombies and powers the VM off. In cloud guests it
 * runs as a systemd service (--service). Either way it speaks the hutch wire protocol (src/proto)
 * over the virtio-serial port org.hutch.agent.0.
 *
 * The host is trusted by the guest; the host does not trust us. We still bound what we accept so a
 * confused host can't make us allocate without limit. */
#include "proto.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define MAX_SESSIONS 64
#define READ_CHUNK 65536
#define STDIN_QUEUE_MAX (PROTO_WINDOW_INIT * 2)

struct session {
	uint32_t channel;
	pid_t pid; /* direct child; also the session id (it calls setsid) */
	bool child_done;
	int status; /* wait status of the direct child */
	bool exit_sent;
	bool tty;
	bool app;
	int in_fd;  /* write end to the child's stdin (or the pty master dup) */
	int out_fd; /* stdout pipe, or the pty master */
	int err_fd; /* stderr pipe, -1 for tty */
	bool out_eof, err_eof, in_eof_pending;
	uint32_t credit; /* bytes we may still send on this channel */
	uint8_t *inq;	 /* queued stdin bytes from the host */
	size_t inq_len;
	size_t in_written; /* written since the last WINDOW grant */
};

static struct {
	bool pid1;
	int port;
	struct session *s[MAX_SESSIONS];
	struct proto_reader rd;
	bool poweroff;
	bool host_down; /* the port reported hangup: no host connected */
	/* The host answered our HELLO on this connection. Until it has, HELLO is said again every
	 * second and everything else from the host is dropped: it may be what was queued for an
	 * earlier agent. */
	bool acked;
	uint64_t hello_ms;
	uint64_t boot_ms;
	uint32_t last_activity_sessions;
} g = {.port = -1};

static void logmsg(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "hutch-agent: %s\n", buf);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int write_all(int fd, const void *buf, size_t len)
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

static void send_frame(uint8_t type, uint32_t channel, const void *payload, size_t len)
{
	struct proto_buf b = {0};
	if (proto_frame_append(&b, type, channel, payload, len) == 0 && g.port >= 0)
		if (write_all(g.port, b.data, b.len) < 0)
			logmsg("write to host failed: %s", strerror(errno));
	proto_buf_free(&b);
}

static void send_buf(uint8_t type, uint32_t channel, struct proto_buf *payload)
{
	send_frame(type, channel, payload->data, payload->len);
	proto_buf_free(payload);
}

static void send_error(uint32_t channel, const char *fmt, ...)
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

/* ---- PID 1 setup ---- */

static void mount_api_filesystems(void)
{
	mkdir("/proc", 0555);
	mkdir("/sys", 0555);
	mkdir("/dev", 0755);
	mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	mkdir("/dev/pts", 0755);
	mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "gid=5,mode=0620,ptmxmode=0666");
	mkdir("/dev/shm", 01777);
	mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
	mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	symlink("/proc/self/fd", "/dev/fd");
	symlink("/proc/self/fd/0", "/dev/stdin");
	symlink("/proc/self/fd/1", "/dev/stdout");
	symlink("/proc/self/fd/2", "/dev/stderr");
}

static char *read_small_file(const char *path, size_t max)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	char *buf = malloc(max + 1);
	size_t got = 0;
	if (buf) {
		ssize_t n;
		while (got < max && (n = read(fd, buf + got, max - got)) > 0)
			got += (size_t)n;
		buf[got] = 0;
	}
	close(fd);
	return buf;
}

/* Module parameters given on the kernel command line as MOD.param=value. For loadable modules the
 * kernel does not apply them itself; modprobe normally does. */
static void module_params(const char *cmdline, const char *mod, char *out, size_t outlen)
{
	size_t ml = strlen(mod);
	out[0] = 0;
	char *copy = strdup(cmdline ? cmdline : "");
	for (char *save = NULL, *tok = strtok_r(copy, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
		bool match = strlen(tok) > ml + 1 && tok[ml] == '.';
		for (size_t i = 0; match && i < ml; i++) {
			char a = tok[i] == '-' ? '_' : tok[i], b = mod[i] == '-' ? '_' : mod[i];
			match = a == b;
		}
		if (match && strlen(out) + strlen(tok + ml + 1) + 2 < outlen) {
			if (out[0])
				strcat(out, " ");
			strcat(out, tok + ml + 1);
		}
	}
	free(copy);
}

/* Modules that only matter when their device is there. Loading all twenty under TCG costs a few
 * hundred ms of boot; microvm has no PCI, and disks, 9p shares and vsock are optional. */
static const struct {
	const char *mod;
	int virtio_id; /* the device that needs it; -1 = a PCI bus */
} optional_mods[] = {
	{"virtio_pci", -1},
	{"virtio_pci_legacy_dev", -1},
	{"virtio_pci_modern_dev", -1},
	{"virtio_net", 1},
	{"net_failover", 1},
	{"failover", 1},
	{"virtio_blk", 2},
	{"virtio_balloon", 5},
	{"9pnet_virtio", 9},
	{"9p", 9},
	{"9pnet", 9},
	{"fscache", 9},
	{"netfs", 9},
	{"vmw_vsock_virtio_transport", 19},
	{"vmw_vsock_virtio_transport_common", 19},
	{"vsock", 19},
};

static bool dir_has_entries(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		return false;
	struct dirent *de;
	bool any = false;
	while (!any && (de = readdir(d)))
		any = de->d_name[0] != '.';
	closedir(d);
	return any;
}

/* Is a virtio device with this id present (on the mmio or pci transport, once that is loaded)? */
static bool virtio_present(int id)
{
	DIR *d = opendir("/sys/bus/virtio/devices");
	if (!d)
		return false;
	struct dirent *de;
	bool found = false;
	while (!found && (de = readdir(d))) {
		if (de->d_name[0] == '.' || strlen(de->d_name) > 32)
			continue;
		char p[96];
		snprintf(p, sizeof(p), "/sys/bus/virtio/devices/%.32s/device", de->d_name);
		char *v = read_small_file(p, 32);
		found = v && strtol(v, NULL, 16) == id;
		free(v);
	}
	closedir(d);
	return found;
}

static bool module_wanted(const char *mod)
{
	for (size_t i = 0; i < sizeof(optional_mods) / sizeof(optional_mods[0]); i++) {
		if (strcmp(optional_mods[i].mod, mod) != 0)
			continue;
		if (optional_mods[i].virtio_id < 0)
			return dir_has_entries("/sys/bus/pci/devices");
		return virtio_present(optional_mods[i].virtio_id);
	}
	return true;
}

static void load_modules(const char *release, const char *cmdline)
{
	char list[256];
	snprintf(list, sizeof(list), "/lib/modules/%s/hutch.load", release);
	char *text = read_small_file(list, 65536);
	if (!text)
		return;
	for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char path[512], mod[128], params[1024];
		snprintf(path, sizeof(path), "/lib/modules/%s/%s", release, line);
		const char *base = strrchr(line, '/');
		snprintf(mod, sizeof(mod), "%s", base ? base + 1 : line);
		char *dot = strchr(mod, '.');
		if (dot)
			*dot = 0;
		for (char *p = mod; *p; p++)
			if (*p == '-')
				*p = '_';
		/* the list is in dependency order, so the bus drivers are loaded before this is asked */
		if (!module_wanted(mod))
			continue;
		module_params(cmdline, mod, params, sizeof(params));
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			logmsg("module %s: %s", path, strerror(errno));
			continue;
		}
		if (syscall(SYS_finit_module, fd, params, 0) < 0 && errno != EEXIST)
			logmsg("module %s: %s", mod, strerror(errno));
		close(fd);
	}
	free(text);
}

static void setup_hostname(const char *cmdline)
{
	const char *h = cmdline ? strstr(cmdline, "hutch.hostname=") : NULL;
	char name[64] = "micro";
	if (h) {
		h += strlen("hutch.hostname=");
		size_t n = strcspn(h, " \n");
		if (n > 0 && n < sizeof(name)) {
			memcpy(name, h, n);
			name[n] = 0;
		}
	}
	sethostname(name, strlen(name));
}

static void loopback_up(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	struct ifreq ifr = {0};
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		ioctl(fd, SIOCSIFFLAGS, &ifr);
	}
	close(fd);
}

/* ---- the agent port ---- */

static int open_port(void)
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
static void send_pong(const struct proto_frame *ping)
{
	send_frame(MSG_PONG, ping->channel, ping->payload, ping->len > 8 ? 8 : ping->len);
}

static void send_hello(void)
{
	struct utsname u;
	uname(&u);
	g.hello_ms = mono_ms();
	struct proto_buf b = {0};
	proto_encode_hello(&b, PROTO_VERSION, 0, u.release);
	send_buf(MSG_HELLO, 0, &b);
}

/* ---- exec sessions ---- */

static struct session *session_find(uint32_t channel)
{
	for (int i = 0; i < MAX_SESSIONS; i++)
		if (g.s[i] && g.s[i]->channel == channel)
			return g.s[i];
	return NULL;
}

static int session_count(void)
{
	int n = 0;
	for (int i = 0; i < MAX_SESSIONS; i++)
		n += g.s[i] != NULL;
	return n;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void session_free(struct session *s)
{
	for (int i = 0; i < MAX_SESSIONS; i++)
		if (g.s[i] == s)
			g.s[i] = NULL;
	if (s->in_fd != s->out_fd)
		close_fd(&s->in_fd);
	close_fd(&s->out_fd);
	close_fd(&s->err_fd);
	free(s->inq);
	free(s);
}

static void send_activity(void)
{
	struct proto_buf b = {0};
	uint32_t n = (uint32_t)session_count();
	proto_put_u32(&b, n);
	proto_put_u32(&b, n);
	send_buf(MSG_ACTIVITY, 0, &b);
	g.last_activity_sessions = n;
}

struct user_info {
	uid_t uid;
	gid_t gid;
	char home[256];
	char shell[256];
	char name[64];
};

/* Look the user up in the guest's /etc/passwd: by name or numeric uid. */
static int lookup_user(const char *user, struct user_info *ui)
{
	memset(ui, 0, sizeof(*ui));
	strcpy(ui->home, "/");
	strcpy(ui->shell, "/bin/sh");
	strcpy(ui->name, "root");
	if (!user || !*user)
		user = "root";
	FILE *f = fopen("/etc/passwd", "re");
	char line[1024];
	bool numeric = strspn(user, "0123456789") == strlen(user);
	while (f && fgets(line, sizeof(line), f)) {
		char *fields[7] = {0};
		char *p = line;
		for (int i = 0; i < 7 && p; i++) {
			fields[i] = p;
			p = strchr(p, ':');
			if (p)
				*p++ = 0;
		}
		if (!fields[6])
			continue;
		fields[6][strcspn(fields[6], "\n")] = 0;
		if (numeric ? strcmp(fields[2], user) != 0 : strcmp(fields[0], user) != 0)
			continue;
		ui->uid = (uid_t)strtoul(fields[2], NULL, 10);
		ui->gid = (gid_t)strtoul(fields[3], NULL, 10);
		snprintf(ui->home, sizeof(ui->home), "%s", fields[5]);
		snprintf(ui->shell, sizeof(ui->shell), "%s", *fields[6] ? fields[6] : "/bin/sh");
		snprintf(ui->name, sizeof(ui->name), "%s", fields[0]);
		fclose(f);
		return 0;
	}
	if (f)
		fclose(f);
	if (strcmp(user, "root") == 0 || strcmp(user, "0") == 0)
		return 0;
	if (numeric) {
		ui->uid = ui->gid = (uid_t)strtoul(user, NULL, 10);
		return 0;
	}
	return -1;
}

static void child_exec(struct proto_exec *e, struct user_info *ui, int in, int out, int err, int pty_slave)
{
	setsid();
	if (pty_slave >= 0) {
		ioctl(pty_slave, TIOCSCTTY, 0);
		in = out = err = pty_slave;
	}
	dup2(in, 0);
	dup2(out, 1);
	dup2(err, 2);
	/* One syscall instead of a thousand: each one costs microseconds under TCG. */
	if (syscall(SYS_close_range, 3, ~0u, 0) < 0)
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
	sigset_t all;
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	for (int s = 1; s < 32; s++)
		signal(s, SIG_DFL);
	if (ui->uid != 0 || ui->gid != 0) {
		if (initgroups(ui->name, ui->gid) < 0)
			setgroups(0, NULL);
		if (setgid(ui->gid) < 0 || setuid(ui->uid) < 0) {
			dprintf(2, "hutch-agent: cannot switch to user %s: %s\n", ui->name, strerror(errno));
			_exit(126);
		}
	}
	clearenv();
	setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
	setenv("HOME", ui->home, 1);
	setenv("USER", ui->name, 1);
	setenv("LOGNAME", ui->name, 1);
	setenv("SHELL", ui->shell, 1);
	setenv("TERM", pty_slave >= 0 ? "xterm-256color" : "dumb", 1);
	for (size_t i = 0; e->env && e->env[i]; i++) {
		char *eq = strchr(e->env[i], '=');
		if (eq && eq != e->env[i])
			putenv(e->env[i]);
	}
	const char *cwd = e->cwd && *e->cwd ? e->cwd : ui->home;
	if (chdir(cwd) < 0) {
		if (e->cwd && *e->cwd) {
			dprintf(2, "hutch-agent: cannot change directory to %s: %s\n", cwd, strerror(errno));
			_exit(126);
		}
		if (chdir("/") < 0)
			_exit(126);
	}
	if (!e->argv[0][0])
		e->argv[0] = ui->shell; /* "" = the user's login shell */
	char *argv0 = e->argv[0];
	if (e->flags & EXEC_LOGIN) {
		const char *base = strrchr(argv0, '/');
		char *login = malloc(strlen(argv0) + 2);
		sprintf(login, "-%s", base ? base + 1 : argv0);
		e->argv[0] = login;
	}
	execvp(argv0, e->argv);
	int saved = errno;
	dprintf(2, "hutch-agent: %s: %s\n", argv0, strerror(saved));
	_exit(saved == ENOENT ? 127 : 126);
}

static int open_pty(int *master, int *slave, uint16_t rows, uint16_t cols)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0)
		return -1;
	if (grantpt(m) < 0 || unlockpt(m) < 0) {
		close(m);
		return -1;
	}
	char name[64];
	if (ptsname_r(m, name, sizeof(name)) != 0) {
		close(m);
		return -1;
	}
	int s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (s < 0) {
		close(m);
		return -1;
	}
	struct winsize ws = {.ws_row = rows ? rows : 24, .ws_col = cols ? cols : 80};
	ioctl(m, TIOCSWINSZ, &ws);
	*master = m;
	*slave = s;
	return 0;
}

static void send_exit(uint32_t channel, uint8_t kind, int32_t code)
{
	struct proto_buf b = {0};
	proto_encode_exit(&b, kind, code);
	send_buf(MSG_EXIT, channel, &b);
}

static void handle_exec(const struct proto_frame *f)
{
	struct proto_exec e;
	if (session_find(f->channel)) {
		send_exit(f->channel, EXIT_FAILED, EBUSY);
		return;
	}
	if (proto_decode_exec(f, &e) < 0) {
		send_error(f->channel, "malformed EXEC");
		send_exit(f->channel, EXIT_FAILED, EINVAL);
		return;
	}
	int slot = -1;
	for (int i = 0; i < MAX_SESSIONS && slot < 0; i++)
		if (!g.s[i])
			slot = i;
	struct user_info ui;
	if (slot < 0 || lookup_user(e.user, &ui) < 0) {
		if (slot >= 0)
			send_error(f->channel, "no user '%s' in the guest", e.user);
		send_exit(f->channel, EXIT_FAILED, slot < 0 ? EAGAIN : ESRCH);
		proto_exec_free(&e);
		return;
	}
	int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, master = -1, slave = -1;
	bool tty = e.flags & EXEC_TTY;
	int r;
	if (tty)
		r = open_pty(&master, &slave, e.rows, e.cols);
	else {
		r = pipe2(out, O_CLOEXEC) | pipe2(err, O_CLOEXEC);
		if (r == 0 && (e.flags & EXEC_STDIN))
			r = pipe2(in, O_CLOEXEC);
		else if (r == 0) {
			in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
			r = in[0] < 0 ? -1 : 0;
		}
	}
	pid_t pid = r < 0 ? -1 : fork();
	if (pid == 0)
		child_exec(&e, &ui, in[0], out[1], err[1], slave);
	int saved = errno;
	close_fd(&in[0]);
	close_fd(&out[1]);
	close_fd(&err[1]);
	close_fd(&slave);
	if (pid < 0) {
		close_fd(&in[1]);
		close_fd(&out[0]);
		close_fd(&err[0]);
		close_fd(&master);
		send_exit(f->channel, EXIT_FAILED, saved);
		proto_exec_free(&e);
		return;
	}
	struct session *s = calloc(1, sizeof(*s));
	s->channel = f->channel;
	s->pid = pid;
	s->tty = tty;
	s->app = e.flags & EXEC_APP;
	s->credit = PROTO_WINDOW_INIT;
	if (tty) {
		s->in_fd = s->out_fd = master;
		s->err_fd = -1;
		s->err_eof = true;
	} else {
		s->in_fd = in[1];
		s->out_fd = out[0];
		s->err_fd = err[0];
	}
	if (s->in_fd >= 0)
		fcntl(s->in_fd, F_SETFL, fcntl(s->in_fd, F_GETFL) | O_NONBLOCK);
	if (s->out_fd >= 0)
		fcntl(s->out_fd, F_SETFL, fcntl(s->out_fd, F_GETFL) | O_NONBLOCK);
	if (s->err_fd >= 0)
		fcntl(s->err_fd, F_SETFL, fcntl(s->err_fd, F_GETFL) | O_NONBLOCK);
	g.s[slot] = s;
	proto_exec_free(&e);
	send_activity();
}

/* Is any process still in this session? A launcher that forks and exits leaves its children here,
 * and the app is only over when the whole session is. */
static bool session_alive(pid_t sid)
{
	DIR *d = opendir("/proc");
	if (!d)
		return false;
	struct dirent *de;
	bool alive = false;
	while (!alive && (de = readdir(d))) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		char p[64], buf[512];
		snprintf(p, sizeof(p), "/proc/%.20s/stat", de->d_name);
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = 0;
		/* pid (comm) state ppid pgrp session ...; comm may hold spaces and parens */
		char *rp = strrchr(buf, ')');
		char state;
		int ppid, pgrp, sess;
		if (!rp || sscanf(rp + 1, " %c %d %d %d", &state, &ppid, &pgrp, &sess) != 4)
			continue;
		if (sess == sid && state != 'Z')
			alive = true;
	}
	closedir(d);
	return alive;
}

static void session_maybe_finish(struct session *s)
{
	if (!s->child_done || s->exit_sent)
		return;
	if (!(s->out_eof && s->err_eof))
		return;
	/* Cheap first: the session leader's process group. Only a pty session (job control makes new
	 * groups) needs the /proc scan of the whole session, which is slow on a busy TCG guest. */
	if (kill(-s->pid, 0) == 0 || (s->tty && session_alive(s->pid)))
		return;
	if (WIFSIGNALED(s->status))
		send_exit(s->channel, EXIT_SIGNAL, WTERMSIG(s->status));
	else
		send_exit(s->channel, EXIT_CODE, WEXITSTATUS(s->status));
	s->exit_sent = true;
	session_free(s);
	send_activity();
}

static void reap_children(void)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (int i = 0; i < MAX_SESSIONS; i++) {
			struct session *s = g.s[i];
			if (s && s->pid == pid) {
				s->child_done = true;
				s->status = status;
			}
		}
	}
}

static void session_read(struct session *s, int *fdp, uint8_t type, bool *eof)
{
	static uint8_t buf[READ_CHUNK];
	size_t want = s->credit < sizeof(buf) ? s->credit : sizeof(buf);
	size_t got = 0;
	bool hit_eof = false;
	/* Coalesce: programs often write in small pieces, and every frame costs a trip through
	 * virtio-serial. Gather what is already there (the fd is non-blocking) into one frame. */
	while (got < want) {
		ssize_t n = read(*fdp, buf + got, want - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			/* EIO on a pty master means the slave side is gone: that's EOF. */
			hit_eof = true;
			break;
		}
		got += (size_t)n;
	}
	if (got) {
		s->credit -= (uint32_t)got;
		send_frame(type, s->channel, buf, got);
	}
	if (hit_eof) {
		*eof = true;
		send_frame(type, s->channel, NULL, 0);
		if (s->tty && s->in_fd == *fdp)
			s->in_fd = -1;
		close_fd(fdp);
	}
}

static void session_flush_stdin(struct session *s)
{
	while (s->inq_len && s->in_fd >= 0) {
		ssize_t n = write(s->in_fd, s->inq, s->inq_len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			/* The program closed its stdin: drop what is queued. */
			s->inq_len = 0;
			if (!s->tty)
				close_fd(&s->in_fd);
			break;
		}
		memmove(s->inq, s->inq + n, s->inq_len - (size_t)n);
		s->inq_len -= (size_t)n;
		s->in_written += (size_t)n;
	}
	if (s->in_written >= PROTO_WINDOW_INIT / 4 || (s->inq_len == 0 && s->in_written)) {
		struct proto_buf b = {0};
		proto_put_u32(&b, (uint32_t)s->in_written);
		send_buf(MSG_WINDOW, s->channel, &b);
		s->in_written = 0;
	}
	if (s->inq_len == 0 && s->in_eof_pending) {
		s->in_eof_pending = false;
		if (s->tty) {
			if (s->in_fd >= 0)
				write(s->in_fd, "\004", 1);
		} else
			close_fd(&s->in_fd);
	}
}

static void handle_frame(const struct proto_frame *f)
{
	struct session *s = f->channel ? session_find(f->channel) : NULL;
	uint32_t v;
	uint16_t rows, cols;
	if (f->type == MSG_HELLO) {
		struct proto_hello h;
		if (proto_decode_hello(f, &h) < 0)
			return;
		g.acked = true;
		if (h.caps & PROTO_HELLO_QUERY)
			send_hello();
		proto_hello_free(&h);
		return;
	}
	if (!g.acked)
		return;
	switch (f->type) {
	case MSG_PING: {
		send_pong(f);
		break;
	}
	case MSG_POWEROFF:
		g.poweroff = true;
		break;
	case MSG_EXEC:
		handle_exec(f);
		break;
	case MSG_STDIN:
		if (!s || s->in_fd < 0)
			break;
		if (s->inq_len + f->len > STDIN_QUEUE_MAX) {
			send_error(f->channel, "stdin window exceeded");
			break;
		}
		s->inq = realloc(s->inq, s->inq_len + f->len);
		memcpy(s->inq + s->inq_len, f->payload, f->len);
		s->inq_len += f->len;
		session_flush_stdin(s);
		break;
	case MSG_STDIN_EOF:
		if (s) {
			s->in_eof_pending = true;
			session_flush_stdin(s);
		}
		break;
	case MSG_SIGNAL:
		if (s && proto_decode_u32(f, &v) == 0 && v > 0 && v < 65)
			kill(-s->pid, (int)v);
		break;
	case MSG_WINDOW:
		if (s && proto_decode_u32(f, &v) == 0 && (uint64_t)s->credit + v <= 64u * PROTO_WINDOW_INIT)
			s->credit += v;
		break;
	case MSG_WINSIZE:
		if (s && s->tty && proto_decode_winsize(f, &rows, &cols) == 0) {
			struct winsize ws = {.ws_row = rows, .ws_col = cols};
			ioctl(s->out_fd, TIOCSWINSZ, &ws);
			kill(-s->pid, SIGWINCH);
		}
		break;
	case MSG_STAT:
		send_activity();
		break;
	default:
		break;
	}
}

static void poweroff_now(void)
{
	logmsg("powering off");
	sync();
	if (g.pid1) {
		kill(-1, SIGTERM);
		reboot(RB_POWER_OFF);
	}
	/* As a service: ask init for an orderly poweroff. systemd takes SIGRTMIN+4 as "poweroff", counted
	 * from glibc's SIGRTMIN (34): signal 38. musl's SIGRTMIN is 35, so the number is spelled out.
	 * Without systemd, fall back to the hard way (we are root). */
	char comm[32] = "";
	int fd = open("/proc/1/comm", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, comm, sizeof(comm) - 1);
		comm[n > 0 ? n : 0] = 0;
		close(fd);
	}
	if (!strncmp(comm, "systemd", 7) && kill(1, 38) == 0)
		return;
	reboot(RB_POWER_OFF);
	exit(0);
}

static void main_loop(int sigfd)
{
	for (;;) {
		struct pollfd pfd[2 + 2 * MAX_SESSIONS];
		struct session *who[2 + 2 * MAX_SESSIONS];
		int n = 0;
		pfd[n] = (struct pollfd){.fd = g.port, .events = POLLIN};
		who[n++] = NULL;
		pfd[n] = (struct pollfd){.fd = sigfd, .events = POLLIN};
		who[n++] = NULL;
		bool pending_finish = false;
		for (int i = 0; i < MAX_SESSIONS; i++) {
			struct session *s = g.s[i];
			if (!s)
				continue;
			if (s->out_fd >= 0 && s->credit > 0) {
				short ev = POLLIN;
				if (s->tty && s->inq_len)
					ev |= POLLOUT;
				pfd[n] = (struct pollfd){.fd = s->out_fd, .events = ev};
				who[n++] = s;
			}
			if (s->err_fd >= 0 && s->credit > 0) {
				pfd[n] = (struct pollfd){.fd = s->err_fd, .events = POLLIN};
				who[n++] = s;
			}
			if (!s->tty && s->in_fd >= 0 && s->inq_len) {
				pfd[n] = (struct pollfd){.fd = s->in_fd, .events = POLLOUT};
				who[n++] = s;
			}
			if (s->child_done && s->out_eof && s->err_eof)
				pending_finish = true;
		}
		/* A finished child whose session lives on is re-checked every 200 ms; while no host is
		 * connected, every 100 ms until one is. */
		int r = poll(pfd, (nfds_t)n, g.host_down ? 100 : !g.acked ? 250 : pending_finish ? 200 : -1);
		if (r < 0 && errno != EINTR)
			break;
		if (g.host_down && r >= 0 && !(pfd[0].revents & POLLHUP)) {
			/* The host (re)connected, as the monitor does when an agent went away: it starts
			 * afresh, so do we, with nothing half-read from before. */
			g.host_down = false;
			proto_reader_free(&g.rd);
			logmsg("the host connected: saying HELLO again");
			send_hello();
		} else if (!g.acked && !g.host_down && mono_ms() - g.hello_ms >= 1000) {
			send_hello();
		}
		if (pfd[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			while (read(sigfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGTERM && !g.pid1)
					exit(0);
			}
			reap_children();
		}
		if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			long got = proto_reader_read_fd(&g.rd, g.port);
			if (got <= 0) {
				/* No host connected: virtio-serial reports hangup. Back off and retry. */
				if (got < 0 && errno != EAGAIN && errno != EINTR)
					logmsg("read from host: %s", strerror(errno));
				if (got == 0) {
					g.host_down = true;
					g.acked = false;
				}
				usleep(100000);
			}
			struct proto_frame f;
			int k;
			while ((k = proto_reader_next(&g.rd, &f)) == 1)
				handle_frame(&f);
			if (k < 0) {
				logmsg("malformed frame from host; resetting the stream");
				proto_reader_free(&g.rd);
			}
		}
		for (int i = 2; i < n; i++) {
			struct session *s = who[i];
			if (!s || !pfd[i].revents || !session_find(s->channel))
				continue;
			if (pfd[i].fd == s->out_fd && (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				session_read(s, &s->out_fd, MSG_STDOUT, &s->out_eof);
			else if (pfd[i].fd == s->err_fd && (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				session_read(s, &s->err_fd, MSG_STDERR, &s->err_eof);
			if (pfd[i].revents & POLLOUT)
				session_flush_stdin(s);
		}
		for (int i = 0; i < MAX_SESSIONS; i++)
			if (g.s[i])
				session_maybe_finish(g.s[i]);
		if (g.poweroff) {
			g.poweroff = false;
			poweroff_now();
		}
	}
}

#ifdef HUTCH_TEST_HOSTILE
/* Reads frames until an EXEC, answering PINGs (the monitor asks a quiet agent before an EXEC). */
static void hostile_wait_exec(struct proto_frame *f)
{
	for (;;) {
		int k;
		while ((k = proto_reader_next(&g.rd, f)) == 1) {
			if (f->type == MSG_EXEC)
				return;
			if (f->type == MSG_PING)
				send_pong(f);
		}
		if (proto_reader_read_fd(&g.rd, g.port) <= 0)
			usleep(100000);
	}
}

/* flap: a working agent whose port closes under its first session, as when systemd restarts the
 * agent. `exec -- flap SEC` keeps the port closed SEC seconds (default 20), then a new agent opens
 * it, says HELLO and serves sessions. */
static void hostile_flap(int sigfd)
{
	struct proto_frame f;
	hostile_wait_exec(&f);
	struct proto_exec e;
	unsigned secs = 20;
	if (proto_decode_exec(&f, &e) == 0) {
		if (e.argv[0] && !strcmp(e.argv[0], "flap") && e.argv[1])
			secs = (unsigned)atoi(e.argv[1]);
		proto_exec_free(&e);
	}
	logmsg("flap: closing the port for %u s", secs);
	close(g.port);
	sleep(secs);
	while ((g.port = open_port()) < 0)
		usleep(100000);
	proto_reader_free(&g.rd);
	logmsg("flap: the port is open again");
	send_hello();
	main_loop(sigfd);
}

/* Test build only (hostile-agent): misbehaves on purpose so the tests can show that a hostile guest
 * can't crash, hang or bloat the host. Mode from the kernel command line: hutch.hostile=MODE. */
static void hostile_main(const char *cmdline, int sigfd)
{
	const char *m = cmdline ? strstr(cmdline, "hutch.hostile=") : NULL;
	char mode[32] = "garbage";
	if (m)
		sscanf(m + strlen("hutch.hostile="), "%31[a-z]", mode);
	logmsg("hostile mode '%s'", mode);
	if (strcmp(mode, "nohello") != 0 && strcmp(mode, "badhello") != 0)
		send_hello();
	if (!strcmp(mode, "garbage")) {
		static const uint8_t junk[] = {5, 0, 0, 0, 0xee, 1, 0, 0, 0, 'x', 'x', 'x', 'x', 'x'};
		write_all(g.port, junk, sizeof(junk));
	} else if (!strcmp(mode, "oversized")) {
		uint8_t hdr[9] = {0, 0, 0x20, 0, MSG_STDOUT, 1, 0, 0, 0}; /* 2 MiB */
		write_all(g.port, hdr, sizeof(hdr));
		static uint8_t fill[65536];
		for (int i = 0; i < 40; i++)
			write_all(g.port, fill, sizeof(fill));
	} else if (!strcmp(mode, "badhello")) {
		send_frame(MSG_HELLO, 0, "\x01", 1);
	} else if (!strcmp(mode, "flood")) {
		/* Wait for an EXEC, then ignore the credit window entirely. */
		struct proto_frame f;
		hostile_wait_exec(&f);
		uint32_t ch = f.channel;
		static uint8_t fill[65536];
		for (int i = 0; i < 2048; i++)
			send_frame(MSG_STDOUT, ch, fill, sizeof(fill));
	} else if (!strcmp(mode, "flap")) {
		hostile_flap(sigfd);
	}
	/* mute: said HELLO, then never reads or answers again, as an agent under SIGSTOP */
	for (;;)
		pause();
}
#endif

int main(int argc, char **argv)
{
	g.pid1 = getpid() == 1;
	bool service = argc > 1 && strcmp(argv[1], "--service") == 0;
	if (argc > 1 && !service) {
		fprintf(stderr, "usage: hutch-agent [--service]\n");
		return 2;
	}
	g.boot_ms = mono_ms();
	struct utsname u;
	uname(&u);
	char *cmdline = NULL;
	if (g.pid1) {
		mount_api_filesystems();
		cmdline = read_small_file("/proc/cmdline", 4096);
		load_modules(u.release, cmdline);
		setup_hostname(cmdline);
		loopback_up();
		setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
	} else {
		/* Orphans of exec sessions reparent to us, so we see when an app's session is gone. */
		prctl(PR_SET_CHILD_SUBREAPER, 1);
	}
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	int sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	proto_reader_init(&g.rd);

	for (int tries = 0; (g.port = open_port()) < 0; tries++) {
		if (tries == 0)
			logmsg("waiting for the %s port", PROTO_AGENT_PORT);
		if (tries > 300 && !g.pid1) {
			logmsg("no %s port: giving up", PROTO_AGENT_PORT);
			return 1;
		}
		reap_children();
		usleep(tries < 50 ? 20000 : 200000);
	}
#ifdef HUTCH_TEST_HOSTILE
	hostile_main(cmdline, sigfd);
#endif
	send_hello();
	logmsg("ready in %llu ms (kernel %s)", (unsigned long long)(mono_ms() - g.boot_ms), u.release);
	free(cmdline);
	main_loop(sigfd);
	if (g.pid1)
		poweroff_now();
	return 0;
}
