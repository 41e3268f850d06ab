/* Exec sessions: one child per channel, its pipes or pty, credit windows and exit reports. */
#include "agent.h"

/* ---- exec sessions ---- */

struct session *session_find(uint32_t channel)
{
	for (int i = 0; i < MAX_SESSIONS; i++)
		if (g.s[i] && g.s[i]->channel == channel)
			return g.s[i];
	return NULL;
}

int session_count(void)
{
	int n = 0;
	for (int i = 0; i < MAX_SESSIONS; i++)
		n += g.s[i] != NULL;
	return n;
}

void close_fd(int *fd)
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

void send_activity(void)
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
	notify_session_env(ui->uid);
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

void handle_exec(const struct proto_frame *f)
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

void session_maybe_finish(struct session *s)
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

void reap_children(void)
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

void session_read(struct session *s, int *fdp, uint8_t type, bool *eof)
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

void session_flush_stdin(struct session *s)
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
