/* killshim [-n N] STEP SUFFIX -- CMD [ARG...]
 *
 * SIGKILL at a chosen step of a state write, with no test hook in hutch and no LD_PRELOAD: CMD and
 * everything it spawns (monitor, QEMU) run under a seccomp user-notification filter, and this
 * process, their supervisor and subreaper, decides for each notified syscall whether it lets it run
 * or SIGKILLs the caller while it waits at the syscall's entry, so the syscall never happens.
 *
 * The write it watches is write_file_atomic() of a file whose path ends with SUFFIX (e.g.
 * /spec.yml): open SUFFIX.tmp.PID, write, fsync, rename onto SUFFIX, fsync the directory.
 *   STEP  open     at the open that creates the tmp file (nothing written yet)
 *         write    at the first write to the tmp file (it exists, empty)
 *         partial  at that write, after half of its bytes were written to the file for it
 *         fsync    at the fsync of the tmp file (complete, not yet renamed)
 *         rename   at the rename of the tmp file onto SUFFIX
 *         dirsync  at the fsync of the directory after the rename (new file in place)
 * -n N kills at the Nth time the step is reached (default 1).
 *
 * Prints "killshim: killed PID at STEP: PATH" to stderr when it fired. Waits until every process
 * of the tree has exited, then exits with CMD's status (128+N if a signal ended it).
 * x86_64 only. */
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "util.h"

enum step { S_OPEN, S_WRITE, S_PARTIAL, S_FSYNC, S_RENAME, S_DIRSYNC };
static const char *const step_names[] = {"open", "write", "partial", "fsync", "rename", "dirsync"};

static enum step step;
static const char *suffix;
static char *tmp_marker; /* SUFFIX ".tmp." */
static long want_n = 1, seen_n;
static bool fired;

#define ARG_LO(i) (offsetof(struct seccomp_data, args) + (i) * sizeof(__u64))
#define NOTIFY BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF)
#define ALLOW BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)

static int install_filter(void)
{
	bool writes = step == S_WRITE || step == S_PARTIAL;
	bool fsyncs = step == S_FSYNC || step == S_DIRSYNC;
	bool renames = step == S_RENAME || step == S_DIRSYNC;
	bool opens = step == S_OPEN;
	/* Each check jumps over the rest to a NOTIFY or ALLOW at the end. Layout (k = index):
	 *  0 ld arch; 1 jne x86_64 -> allow; 2 ld nr;
	 *  3 openat? -> 13; 4 open? -> 16; 5 creat? -> notify; 6 write? -> 19;
	 *  7 fsync? 8 fdatasync? 9 rename? 10 renameat? 11 renameat2? -> notify; 12 allow
	 *  13 ld args[2]; 14 jset O_CREAT -> notify; 15 allow
	 *  16 ld args[1]; 17 jset O_CREAT -> notify; 18 allow
	 *  19 ld args[0]; 20 jge 3 else allow; 21 ld args[2]; 22 jge 16 -> notify; 23 allow; 24 notify */
	long nr_openat = opens ? __NR_openat : -1, nr_open = opens ? __NR_open : -1, nr_creat = opens ? __NR_creat : -1;
	long nr_write = writes ? __NR_write : -1;
	long nr_fsync = fsyncs ? __NR_fsync : -1, nr_fdatasync = fsyncs ? __NR_fdatasync : -1;
	long nr_rename = renames ? __NR_rename : -1, nr_renameat = renames ? __NR_renameat : -1;
	long nr_renameat2 = renames ? __NR_renameat2 : -1;
	struct sock_filter f[] = {
		/* 0 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		/* 1 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 10),
		/* 2 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		/* 3 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (__u32)nr_openat, 9, 0),
		/* 4 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (__u32)nr_open, 11, 0),
		/* 5 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (__u32)nr_creat, 18, 0),
		/* 6 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (__u32)nr_write, 12, 0),
		/* 7 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (__u32)nr_fsync, 16, 0),
		/* 8 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (__u32)nr_fdatasync, 15, 0),
		/* 9 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (__u32)nr_rename, 14, 0),
		/* 10 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (__u32)nr_renameat, 13, 0),
		/* 11 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (__u32)nr_renameat2, 12, 0),
		/* 12 */ ALLOW,
		/* 13 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(2)),
		/* 14 */ BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, O_CREAT, 9, 0),
		/* 15 */ ALLOW,
		/* 16 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(1)),
		/* 17 */ BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, O_CREAT, 6, 0),
		/* 18 */ ALLOW,
		/* 19 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(0)),
		/* 20 */ BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 3, 0, 2),
		/* 21 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(2)),
		/* 22 */ BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 16, 1, 0),
		/* 23 */ ALLOW,
		/* 24 */ NOTIFY,
	};
	struct sock_fprog prog = {.len = ARRAY_SIZE(f), .filter = f};
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	int fd = (int)syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
	return fd < 0 ? -errno : fd;
}

static int send_fd(int sock, int fd)
{
	char c = 0;
	struct iovec iov = {.iov_base = &c, .iov_len = 1};
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	memset(&u, 0, sizeof(u));
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	return sendmsg(sock, &msg, 0) == 1 ? 0 : -1;
}

static int recv_fd(int sock)
{
	char c;
	struct iovec iov = {.iov_base = &c, .iov_len = 1};
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
	if (recvmsg(sock, &msg, 0) != 1)
		return -1;
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	if (!cm || cm->cmsg_type != SCM_RIGHTS)
		return -1;
	int fd;
	memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	return fd;
}

/* A NUL-terminated string from the target's memory, or "" when it can't be read. */
static void read_str(pid_t pid, uint64_t addr, char *out, size_t len)
{
	out[0] = 0;
	size_t got = 0;
	while (got + 1 < len) {
		/* read page by page so a string near the end of a mapping is still found */
		uint64_t a = addr + got;
		size_t chunk = 4096 - (size_t)(a % 4096);
		if (chunk > len - 1 - got)
			chunk = len - 1 - got;
		struct iovec l = {.iov_base = out + got, .iov_len = chunk},
			     r = {.iov_base = (void *)(uintptr_t)a, .iov_len = chunk};
		ssize_t n = process_vm_readv(pid, &l, 1, &r, 1, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
		if (memchr(out + got - (size_t)n, 0, (size_t)n))
			return;
	}
	out[got] = 0;
}

static void fd_path(pid_t pid, uint64_t fd, char *out, size_t len)
{
	char p[64];
	snprintf(p, sizeof(p), "/proc/%d/fd/%llu", (int)pid, (unsigned long long)fd);
	ssize_t n = readlink(p, out, len - 1);
	out[n > 0 ? n : 0] = 0;
}

static bool is_dir_fd(pid_t pid, uint64_t fd)
{
	char p[64];
	snprintf(p, sizeof(p), "/proc/%d/fd/%llu", (int)pid, (unsigned long long)fd);
	struct stat st;
	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool ends_with(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && strcmp(s + a - b, suf) == 0;
}

/* After a matched rename: the pid and directory whose fsync is the dirsync step. */
static pid_t renamed_by;
static char renamed_dir[4096];

/* Half of the pending write goes to the file for the target, at its file offset. */
static void write_half(pid_t pid, const struct seccomp_notif *n)
{
	size_t len = (size_t)n->data.args[2] / 2;
	char *buf = xmalloc(len + 1);
	struct iovec l = {.iov_base = buf, .iov_len = len},
		     r = {.iov_base = (void *)(uintptr_t)n->data.args[1], .iov_len = len};
	ssize_t got = len ? process_vm_readv(pid, &l, 1, &r, 1, 0) : 0;
	char p[64];
	snprintf(p, sizeof(p), "/proc/%d/fdinfo/%llu", (int)pid, (unsigned long long)n->data.args[0]);
	long long pos = 0;
	FILE *fi = fopen(p, "r");
	if (fi) {
		if (fscanf(fi, "pos: %lld", &pos) != 1)
			pos = 0;
		fclose(fi);
	}
	snprintf(p, sizeof(p), "/proc/%d/fd/%llu", (int)pid, (unsigned long long)n->data.args[0]);
	int fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || got < 0 || pwrite(fd, buf, (size_t)got, pos) != got)
		fprintf(stderr, "killshim: could not write half of the data: %s\n", strerror(errno));
	if (fd >= 0)
		close(fd);
	free(buf);
}

static void handle(int lfd)
{
	struct seccomp_notif n;
	memset(&n, 0, sizeof(n));
	if (ioctl(lfd, SECCOMP_IOCTL_NOTIF_RECV, &n) < 0)
		return;
	pid_t pid = (pid_t)n.pid;
	long nr = n.data.nr;
	char path[4096] = "";
	bool match = false;
	if (!fired) {
		if (nr == __NR_openat || nr == __NR_open || nr == __NR_creat) {
			read_str(pid, nr == __NR_openat ? n.data.args[1] : n.data.args[0], path, sizeof(path));
			match = step == S_OPEN && strstr(path, tmp_marker);
		} else if (nr == __NR_write) {
			fd_path(pid, n.data.args[0], path, sizeof(path));
			match = strstr(path, tmp_marker) != NULL;
		} else if (nr == __NR_fsync || nr == __NR_fdatasync) {
			fd_path(pid, n.data.args[0], path, sizeof(path));
			if (step == S_FSYNC)
				match = strstr(path, tmp_marker) != NULL;
			else
				match = pid == renamed_by && is_dir_fd(pid, n.data.args[0]) &&
					!strcmp(path, renamed_dir);
		} else if (nr == __NR_rename || nr == __NR_renameat || nr == __NR_renameat2) {
			uint64_t from = nr == __NR_rename ? n.data.args[0] : n.data.args[1];
			uint64_t to = nr == __NR_rename ? n.data.args[1] : n.data.args[3];
			char dest[4096];
			read_str(pid, from, path, sizeof(path));
			read_str(pid, to, dest, sizeof(dest));
			if (strstr(path, tmp_marker) && ends_with(dest, suffix)) {
				if (step == S_RENAME)
					match = true;
				else {
					renamed_by = pid;
					snprintf(renamed_dir, sizeof(renamed_dir), "%s", dest);
					char *slash = strrchr(renamed_dir, '/');
					if (slash)
						*slash = 0;
				}
			}
		}
	}
	/* The target may have died meanwhile; then there is nothing to decide. */
	if (match && ioctl(lfd, SECCOMP_IOCTL_NOTIF_ID_VALID, &n.id) == 0 && ++seen_n == want_n) {
		if (step == S_PARTIAL)
			write_half(pid, &n);
		kill(pid, SIGKILL);
		fired = true;
		fprintf(stderr, "killshim: killed %d at %s: %s\n", (int)pid, step_names[step], path);
		/* no reply: the task dies waiting, the syscall never runs */
		return;
	}
	struct seccomp_notif_resp resp = {.id = n.id, .flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE};
	ioctl(lfd, SECCOMP_IOCTL_NOTIF_SEND, &resp);
}

int main(int argc, char **argv)
{
	int opt;
	while ((opt = getopt(argc, argv, "+n:")) != -1) {
		long long v;
		if (opt != 'n' || parse_ll(optarg, 1, 1000000, &v) < 0)
			goto usage;
		want_n = (long)v;
	}
	if (argc - optind < 4 || strcmp(argv[optind + 2], "--") != 0)
		goto usage;
	bool known = false;
	for (size_t i = 0; i < ARRAY_SIZE(step_names); i++)
		if (!strcmp(argv[optind], step_names[i]))
			step = (enum step)i, known = true;
	if (!known)
		goto usage;
	suffix = argv[optind + 1];
	tmp_marker = xasprintf("%s.tmp.", suffix);
	char **cmd = argv + optind + 3;

	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 || prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
		fprintf(stderr, "killshim: %s\n", strerror(errno));
		return 125;
	}
	pid_t child = fork();
	if (child < 0) {
		fprintf(stderr, "killshim: fork: %s\n", strerror(errno));
		return 125;
	}
	if (child == 0) {
		close(sv[0]);
		int lfd = install_filter();
		if (lfd < 0) {
			fprintf(stderr, "killshim: cannot install the seccomp filter: %s\n", strerror(-lfd));
			_exit(125);
		}
		if (send_fd(sv[1], lfd) < 0)
			_exit(125);
		close(lfd);
		close(sv[1]);
		execvp(cmd[0], cmd);
		fprintf(stderr, "killshim: cannot execute %s: %s\n", cmd[0], strerror(errno));
		_exit(127);
	}
	close(sv[1]);
	int lfd = recv_fd(sv[0]);
	close(sv[0]);
	int status = 0;
	bool child_done = false;
	for (;;) {
		if (lfd >= 0) {
			struct pollfd p = {.fd = lfd, .events = POLLIN};
			if (poll(&p, 1, 100) > 0) {
				if (p.revents & POLLIN)
					handle(lfd);
				else if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) {
					close(lfd); /* every filtered task is gone */
					lfd = -1;
				}
			}
		} else
			poll(NULL, 0, 100);
		pid_t w;
		int st;
		while ((w = waitpid(-1, &st, WNOHANG)) > 0)
			if (w == child)
				status = st, child_done = true;
		if (w < 0 && errno == ECHILD)
			break;
	}
	if (!child_done)
		return 125;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
usage:
	fprintf(stderr, "usage: killshim [-n N] open|write|partial|fsync|rename|dirsync SUFFIX -- CMD [ARG...]\n");
	return 2;
}
