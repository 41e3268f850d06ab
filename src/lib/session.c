#include "session.h"

#include "backend_libvirt.h"
#include "client.h"
#include "proto.h"
#include "virt_watch.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <termios.h>

#define CHAN 1 /* the monitor maps it onto an agent channel of its own */

struct sess {
	int fd;
	uint32_t chan; /* CHAN; straight to an agent, one that no earlier session can still hold */
	const struct exec_opts *o;
	uint32_t stdin_credit;
	bool stdin_eof;
	bool got_exit;
	bool lost;     /* the monitor said the agent or the VM went away mid-session */
	int lost_code; /* ESHUTDOWN: the VM went down */
	int status;
	char errmsg[512];
	uint64_t last_sigint;
	bool out_broken; /* our stdout or stderr reader went away */
	bool raw;
	struct termios saved;
};

static int send_u32(int fd, uint32_t chan, uint8_t type, uint32_t v)
{
	struct proto_buf b = {0};
	proto_put_u32(&b, v);
	int r = frame_write(fd, type, chan, b.data, b.len);
	proto_buf_free(&b);
	return r;
}

static void winsize(int fd, uint16_t *rows, uint16_t *cols)
{
	struct winsize ws = {0};
	if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col) {
		*rows = ws.ws_row;
		*cols = ws.ws_col;
	} else {
		*rows = 24;
		*cols = 80;
	}
}

static int send_exec(struct sess *s)
{
	const struct exec_opts *o = s->o;
	struct proto_exec e = {
		.flags = (uint8_t)((o->tty ? EXEC_TTY : 0) | (o->forward_stdin || o->tty ? EXEC_STDIN : 0) |
				   (o->login ? EXEC_LOGIN : 0) | (o->app ? EXEC_APP : 0)),
		.cwd = (char *)(o->cwd ? o->cwd : ""),
		.user = (char *)(o->user ? o->user : ""),
		.argv = o->argv,
		.env = o->env,
	};
	if (o->tty)
		winsize(o->out_fd, &e.rows, &e.cols);
	struct proto_buf b = {0};
	proto_encode_exec(&b, &e);
	if (b.len > PROTO_MAX_PAYLOAD) {
		proto_buf_free(&b);
		return -E2BIG;
	}
	int r = frame_write(s->fd, MSG_EXEC, s->chan, b.data, b.len);
	proto_buf_free(&b);
	return r;
}

static int handle_frame(struct sess *s, const struct proto_frame *f)
{
	if (f->channel != s->chan)
		return 0;
	switch (f->type) {
	case MSG_STDOUT:
	case MSG_STDERR: {
		if (f->len == 0)
			return 0; /* EOF on that stream */
		int out = f->type == MSG_STDOUT ? s->o->out_fd : s->o->err_fd;
		/* Blocking write, then return the credit: a slow reader back-pressures the guest. */
		if (!s->out_broken && write_all(out, f->payload, f->len) < 0) {
			if (errno != EPIPE)
				return -errno;
			/* Like a pipeline: our reader left, so the program gets SIGPIPE. Drain until EXIT. */
			s->out_broken = true;
			send_u32(s->fd, s->chan, MSG_SIGNAL, SIGPIPE);
		}
		return send_u32(s->fd, s->chan, MSG_WINDOW, f->len);
	}
	case MSG_WINDOW: {
		struct proto_cursor c;
		proto_cursor_init(&c, f->payload, f->len);
		uint32_t v = proto_get_u32(&c);
		if (c.ok && (uint64_t)s->stdin_credit + v <= 64ull * PROTO_WINDOW_INIT)
			s->stdin_credit += v;
		return 0;
	}
	case MSG_EXIT: {
		struct proto_exit ex;
		if (proto_decode_exit(f, &ex) < 0)
			return -EPROTO;
		s->got_exit = true;
		if (ex.kind == EXIT_CODE)
			s->status = ex.code & 0xff;
		else if (ex.kind == EXIT_SIGNAL)
			s->status = 128 + (ex.code & 0x7f);
		else if (ex.kind == EXIT_LOST) {
			s->status = -1;
			s->lost = true;
			s->lost_code = ex.code;
			if (!s->errmsg[0])
				snprintf(s->errmsg, sizeof(s->errmsg), "the session was lost; its result is unknown");
		} else {
			s->status = -1;
			if (!s->errmsg[0])
				snprintf(s->errmsg, sizeof(s->errmsg), "could not start the program: %s",
					 strerror(ex.code > 0 && ex.code < 4096 ? ex.code : EIO));
		}
		return 0;
	}
	case MSG_ERROR: {
		struct proto_cursor c;
		proto_cursor_init(&c, f->payload, f->len);
		char *m = proto_get_str(&c, 400);
		if (m)
			snprintf(s->errmsg, sizeof(s->errmsg), "%s", m);
		free(m);
		return 0;
	}
	default:
		return 0;
	}
}

static int pump_stdin(struct sess *s)
{
	char buf[65536];
	size_t want = s->stdin_credit < sizeof(buf) ? s->stdin_credit : sizeof(buf);
	ssize_t n = read(s->o->in_fd, buf, want);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n <= 0) {
		s->stdin_eof = true;
		return frame_write(s->fd, MSG_STDIN_EOF, s->chan, NULL, 0);
	}
	s->stdin_credit -= (uint32_t)n;
	return frame_write(s->fd, MSG_STDIN, s->chan, buf, (size_t)n);
}

/* Returns 1 when the CLI should give up (second Ctrl-C, SIGTERM). */
static int handle_signal(struct sess *s, int sigfd)
{
	struct signalfd_siginfo si;
	while (read(sigfd, &si, sizeof(si)) == sizeof(si)) {
		int sig = (int)si.ssi_signo;
		if (sig == SIGWINCH && s->o->tty) {
			uint16_t rows, cols;
			winsize(s->o->out_fd, &rows, &cols);
			struct proto_buf b = {0};
			proto_put_u16(&b, rows);
			proto_put_u16(&b, cols);
			frame_write(s->fd, MSG_WINSIZE, s->chan, b.data, b.len);
			proto_buf_free(&b);
		} else if (sig == SIGINT) {
			uint64_t t = now_ms();
			/* Ctrl-C goes to the guest program; twice within 2 s hangs up on it. */
			if (s->last_sigint && t - s->last_sigint < 2000)
				return 1;
			s->last_sigint = t;
			send_u32(s->fd, s->chan, MSG_SIGNAL, SIGINT);
		} else if (sig == SIGTERM || sig == SIGHUP) {
			return 1;
		} else if (sig == SIGQUIT) {
			send_u32(s->fd, s->chan, MSG_SIGNAL, SIGQUIT);
		}
	}
	return 0;
}

static void raw_on(struct sess *s)
{
	if (!s->o->tty || !isatty(s->o->in_fd) || tcgetattr(s->o->in_fd, &s->saved) < 0)
		return;
	struct termios raw = s->saved;
	cfmakeraw(&raw);
	tcsetattr(s->o->in_fd, TCSANOW, &raw);
	s->raw = true;
}

static void raw_off(struct sess *s)
{
	if (s->raw)
		tcsetattr(s->o->in_fd, TCSANOW, &s->saved);
	s->raw = false;
}

static int register_run_client(int fd, struct hutch_error *err)
{
	json_object *req = json_object_new_object(), *res = NULL;
	json_object_object_add(req, "op", json_object_new_string("hello"));
	json_object_object_add(req, "run", json_object_new_boolean(1));
	int r = monitor_request(fd, req, 10000, &res, err);
	json_object_put(res);
	return r;
}

int exec_session(const struct store *st, const char *name, const struct exec_opts *o, int *ret_status,
		 struct hutch_error *err)
{
	struct sess s = {.fd = -1, .chan = CHAN, .o = o, .stdin_credit = PROTO_WINDOW_INIT};
	/* a libvirt VM: the agent itself, through libvirt's channel stream (no monitor) */
	int r = libvirt_session_connect(st, name, &s.fd, err);
	if (r < 0)
		return r;
	bool direct = r > 0;
	/* the libvirt supervisor counts sessions for auto_shutdown: registered for this session's life */
	_cleanup_close_ int watch = direct ? virt_watch_register(st, name, o->app, o->run_client) : -1;
	if (direct)
		s.chan = 2 + (uint32_t)(now_ms() % 1000000) * 1000u + (uint32_t)(getpid() % 1000);
	if (!direct && !store_is_running(st, name)) {
		if (!store_vm_exists(st, name))
			return hutch_error_set(err, ENOENT, "no VM named '%s'", name);
		return hutch_error_set(err, ENOTCONN, "is not running: start it first, or use 'hutch run %s -- CMD'",
				       name);
	}
	if (!direct)
		r = monitor_connect(st, name, &s.fd, err);
	if (r < 0)
		return r == -ENOTCONN
			       ? hutch_error_set(err, ENOTCONN,
						 "is not running: start it first, or use 'hutch run %s -- CMD'", name)
			       : r;
	if (o->run_client && !direct && register_run_client(s.fd, err) < 0) {
		close(s.fd);
		return -EIO;
	}
	r = send_exec(&s);
	if (r < 0) {
		close(s.fd);
		return hutch_error_set(err, -r,
				       r == -E2BIG ? "the command line is too long" : "cannot talk to the monitor: %s",
				       strerror(-r));
	}
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	sigaddset(&set, SIGWINCH);
	sigprocmask(SIG_BLOCK, &set, &old);
	int sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	struct sigaction sa_pipe = {.sa_handler = SIG_IGN}, old_pipe;
	sigaction(SIGPIPE, &sa_pipe, &old_pipe);
	raw_on(&s);
	bool forward = o->forward_stdin || o->tty;
	if (!forward)
		s.stdin_eof = true;
	struct proto_reader rd;
	proto_reader_init(&rd);
	bool gave_up = false, lost = false;
	while (!s.got_exit) {
		struct pollfd p[3] = {
			{.fd = s.fd, .events = POLLIN},
			{.fd = sigfd, .events = POLLIN},
			{.fd = (!s.stdin_eof && s.stdin_credit > 0) ? o->in_fd : -1, .events = POLLIN},
		};
		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents && handle_signal(&s, sigfd)) {
			gave_up = true;
			break;
		}
		if (p[2].revents && pump_stdin(&s) < 0) {
			lost = true;
			break;
		}
		if (p[0].revents) {
			long n = proto_reader_read_fd(&rd, s.fd);
			if (n <= 0 && !(n < 0 && (errno == EINTR || errno == EAGAIN))) {
				lost = true;
				break;
			}
			struct proto_frame f;
			int k;
			while (!s.got_exit && (k = proto_reader_next(&rd, &f)) == 1)
				if (handle_frame(&s, &f) < 0) {
					lost = true;
					break;
				}
			if (lost || k < 0) {
				lost = true;
				break;
			}
		}
	}
	raw_off(&s);
	proto_reader_free(&rd);
	close(s.fd);
	close(sigfd);
	sigaction(SIGPIPE, &old_pipe, NULL);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (gave_up)
		return hutch_error_set(err, EINTR, "interrupted: the guest program was hung up");
	if (lost || !s.got_exit)
		return hutch_error_set(err, ECONNRESET, "%s",
				       s.errmsg[0] ? s.errmsg
				       : direct	   ? "lost the libvirt channel to the agent (the connection or the "
						     "domain went away); the result is unknown"
						   : "lost the connection to the monitor; the result is unknown");
	if (s.lost) {
		/* The VM went down: return once its monitor is gone too, so that what the user does next
		 * (start it again, say) does not find it still "running". */
		if (s.lost_code == ESHUTDOWN)
			wait_stopped(st, name, 10000);
		return hutch_error_set(err, ECONNRESET, "%s", s.errmsg);
	}
	if (s.status < 0)
		return hutch_error_set(err, EIO, "%s", s.errmsg);
	*ret_status = s.status;
	return 0;
}

int exec_exit_code(int r, int status)
{
	if (r == -ECONNRESET)
		return EXEC_STATUS_LOST;
	return r < 0 ? 1 : status;
}
