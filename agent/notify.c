/* Notifications' guest side. Once the host asks (an empty MSG_NOTIFY; `notifications: false` never
 * asks), every session bus of the guest, /run/user/UID/bus, gets a hutch-notifyd (agent/notifyd.c)
 * running as UID, which owns org.freedesktop.Notifications there and writes each notification to
 * us over a pipe; we check each frame and pass it on to the host. The buses are looked for again
 * every few seconds, so a user who logs in later is covered too.
 *
 * As PID 1 (micro, and container images booted by the shim) nobody else starts a session bus, so
 * the agent starts one for root, `dbus-daemon --session` at /run/user/0/bus, when the image has
 * dbus-daemon. With systemd, buses are dbus-user-session's job and are only looked for. Exec
 * sessions of a user with a bus get DBUS_SESSION_BUS_ADDRESS, so `hutch exec VM -- notify-send hi`
 * reaches it. */
#include "agent.h"
#include "notification.h"

#include <sys/mman.h>

#define HELPERS_MAX 8
#define SCAN_MS 3000
#define READY_WAIT_MS 15000 /* a helper's start under TCG: loading libdbus and asking for the name */

#ifndef HUTCH_NO_NOTIFYD
extern const unsigned char hutch_notifyd_start[], hutch_notifyd_end[];
#endif

struct helper {
	bool used;
	uid_t uid;
	pid_t pid;
	int fd;
	bool ready;
	struct proto_reader rd;
};

static struct {
	bool on;
	uint64_t next_scan;
	int blob_fd;
	struct helper h[HELPERS_MAX];
} N = {.blob_fd = -1};

static void bus_path(uid_t uid, char *buf, size_t n) { snprintf(buf, n, "/run/user/%u/bus", (unsigned)uid); }

void notify_session_env(uid_t uid)
{
	char path[64];
	bus_path(uid, path, sizeof(path));
	struct stat st;
	if (getenv("DBUS_SESSION_BUS_ADDRESS") || stat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
		return;
	char addr[96];
	snprintf(addr, sizeof(addr), "unix:path=%s", path);
	setenv("DBUS_SESSION_BUS_ADDRESS", addr, 1);
}

/* A child of ours starts with the agent's blocked signals (SIGCHLD, SIGTERM, ...) and ignored
 * SIGPIPE, which exec keeps: undo both before it runs anything. */
static void child_signals(void)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
}

static bool find_program(const char *name, char *out, size_t n)
{
	static const char *const dirs[] = {"/usr/bin", "/bin", "/usr/local/bin"};
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(out, n, "%s/%s", dirs[i], name);
		if (access(out, X_OK) == 0)
			return true;
	}
	return false;
}

/* Wait (bounded) for one line on fd: dbus-daemon prints its address once it listens. */
static bool wait_line(int fd, int ms)
{
	char buf[256];
	size_t got = 0;
	uint64_t end = mono_ms() + (uint64_t)ms;
	while (got < sizeof(buf) && mono_ms() < end) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, (int)(end - mono_ms())) <= 0)
			continue;
		ssize_t n = read(fd, buf + got, sizeof(buf) - got);
		if (n <= 0)
			return false;
		if (memchr(buf + got, '\n', (size_t)n))
			return true;
		got += (size_t)n;
	}
	return false;
}

static void start_root_bus(void)
{
	char daemon[64], path[64];
	bus_path(0, path, sizeof(path));
	if (access(path, F_OK) == 0 || !find_program("dbus-daemon", daemon, sizeof(daemon)))
		return;
	mkdir("/run/user", 0755);
	mkdir("/run/user/0", 0700);
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return;
	pid_t pid = fork();
	if (pid == 0) {
		setsid();
		child_signals();
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(p[1], 3);
		char addr[96];
		snprintf(addr, sizeof(addr), "--address=unix:path=%s", path);
		char *argv[] = {daemon, "--session", "--nofork", "--nopidfile", addr, "--print-address=3", NULL};
		char *envp[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root",
				"XDG_RUNTIME_DIR=/run/user/0", NULL};
		execve(daemon, argv, envp);
		_exit(127);
	}
	close(p[1]);
	if (pid < 0 || !wait_line(p[0], READY_WAIT_MS))
		logmsg("notifications: the session bus did not start");
	else
		logmsg("notifications: started a session bus at %s", path);
	close(p[0]);
}

static int blob_fd(void)
{
#ifdef HUTCH_NO_NOTIFYD
	return -1;
#else
	if (N.blob_fd >= 0)
		return N.blob_fd;
	int fd = memfd_create("hutch-notifyd", MFD_CLOEXEC);
	/* two symbols of the assembler's, around one blob: their addresses, not the pointers, differ */
	size_t len = (size_t)((uintptr_t)hutch_notifyd_end - (uintptr_t)hutch_notifyd_start);
	if (fd < 0 || write_all(fd, hutch_notifyd_start, len) < 0) {
		logmsg("notifications: cannot write the helper: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return N.blob_fd = fd;
#endif
}

static void helper_close(struct helper *h, const char *why)
{
	if (why)
		logmsg("notifications: the helper of uid %u ended: %s", (unsigned)h->uid, why);
	if (h->fd >= 0)
		close(h->fd);
	if (h->pid > 0)
		kill(h->pid, SIGTERM);
	proto_reader_free(&h->rd);
	/* the slot stays taken (fd -1) so a helper that fails is not restarted every few seconds */
	h->fd = -1;
	h->pid = 0;
}

/* One frame from a helper: empty says it owns the name; anything else must be a notification. */
static void helper_frames(struct helper *h)
{
	struct proto_frame f;
	int k;
	while ((k = proto_reader_next(&h->rd, &f)) == 1) {
		struct proto_notify n;
		if (f.type != MSG_NOTIFY) {
			k = -1;
			break;
		}
		if (f.len == 0) {
			h->ready = true;
			continue;
		}
		if (proto_decode_notify(f.payload, f.len, &n) < 0) {
			k = -1;
			break;
		}
		proto_notify_free(&n);
		send_frame(MSG_NOTIFY, 0, f.payload, f.len);
	}
	if (k < 0)
		helper_close(h, "malformed frame");
}

static void helper_read(struct helper *h)
{
	long got = proto_reader_read_fd(&h->rd, h->fd);
	if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR))
		return helper_close(h, got == 0 ? "exited" : strerror(errno));
	helper_frames(h);
}

static void helper_start(struct helper *h, uid_t uid, gid_t gid)
{
	int bfd = blob_fd(), p[2];
	if (bfd < 0 || pipe2(p, O_CLOEXEC) < 0)
		return;
	*h = (struct helper){.used = true, .uid = uid, .fd = -1};
	proto_reader_init(&h->rd);
	pid_t pid = fork();
	if (pid == 0) {
		setsid();
		child_signals();
		int null = open("/dev/null", O_RDONLY);
		dup2(null, 0);
		dup2(p[1], 1);
		struct passwd *pw = getpwuid(uid);
		if (uid != 0 && ((pw ? initgroups(pw->pw_name, gid) : setgroups(0, NULL)) < 0 || setgid(gid) < 0 ||
				 setuid(uid) < 0))
			_exit(126);
		char addr[96], home[300];
		snprintf(addr, sizeof(addr), "DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/%u/bus", (unsigned)uid);
		snprintf(home, sizeof(home), "HOME=%s", pw ? pw->pw_dir : "/");
		char *argv[] = {"hutch-notifyd", NULL};
		char *envp[] = {addr, home, "PATH=/usr/local/bin:/usr/bin:/bin", NULL};
		fexecve(bfd, argv, envp);
		dprintf(2, "hutch-agent: notifications: cannot run the helper: %s\n", strerror(errno));
		_exit(127);
	}
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		return;
	}
	h->pid = pid;
	h->fd = p[0];
	fcntl(h->fd, F_SETFL, O_NONBLOCK);
	/* exec sessions may use the name right after start: wait until the helper owns it */
	uint64_t end = mono_ms() + READY_WAIT_MS;
	while (h->fd >= 0 && !h->ready && mono_ms() < end) {
		struct pollfd pf = {.fd = h->fd, .events = POLLIN};
		if (poll(&pf, 1, (int)(end - mono_ms())) > 0)
			helper_read(h);
	}
	if (h->ready)
		logmsg("notifications: forwarding from the session bus of uid %u", (unsigned)uid);
}

/* Every /run/user/UID/bus owned by UID (root's may be ours) without a helper gets one. */
static void scan(void)
{
	DIR *d = opendir("/run/user");
	struct dirent *de;
	while (d && (de = readdir(d))) {
		char *end;
		unsigned long uid = strtoul(de->d_name, &end, 10);
		if (de->d_name[0] < '0' || de->d_name[0] > '9' || *end || uid > 0x7fffffff)
			continue;
		char path[64];
		struct stat st;
		bus_path((uid_t)uid, path, sizeof(path));
		if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode) || st.st_uid != uid)
			continue;
		struct helper *free_slot = NULL;
		bool have = false;
		for (int i = 0; i < HELPERS_MAX; i++) {
			if (N.h[i].used && N.h[i].uid == uid)
				have = true;
			else if (!N.h[i].used && !free_slot)
				free_slot = &N.h[i];
		}
		if (!have && free_slot)
			helper_start(free_slot, (uid_t)uid, st.st_gid);
	}
	if (d)
		closedir(d);
	N.next_scan = mono_ms() + SCAN_MS;
}

void notify_subscribe(void)
{
	if (N.on)
		return;
	N.on = true;
	if (g.pid1)
		start_root_bus();
	scan();
}

int notify_timeout_ms(void)
{
	if (!N.on)
		return -1;
	uint64_t t = mono_ms();
	return N.next_scan > t ? (int)(N.next_scan - t) : 0;
}

int notify_pollfds(struct pollfd *pfd)
{
	int n = 0;
	for (int i = 0; i < HELPERS_MAX; i++)
		if (N.h[i].used && N.h[i].fd >= 0)
			pfd[n++] = (struct pollfd){.fd = N.h[i].fd, .events = POLLIN};
	return n;
}

void notify_tick(const struct pollfd *pfd, int n)
{
	for (int j = 0; j < n; j++)
		for (int i = 0; i < HELPERS_MAX; i++)
			if (pfd[j].revents && N.h[i].used && N.h[i].fd == pfd[j].fd)
				helper_read(&N.h[i]);
	if (N.on && mono_ms() >= N.next_scan)
		scan();
}
