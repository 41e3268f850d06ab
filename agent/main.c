/* hutch-agent: the guest side of hutch.
 *
 * In the micro template it is PID 1: it mounts the API filesystems, loads the virtio modules listed
 * in /lib/modules/$(uname -r)/hutch.load, reaps zombies and powers the VM off. In cloud guests it
 * runs as a systemd service (--service). Either way it speaks the hutch wire protocol (src/proto)
 * over the virtio-serial port org.hutch.agent.0.
 *
 * The host is trusted by the guest; the host does not trust us. We still bound what we accept so a
 * confused host can't make us allocate without limit. */
#include "agent.h"

struct agent_state g = {.port = -1};

void handle_frame(const struct proto_frame *f)
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
	case MSG_LISTENERS:
		listeners_subscribe();
		break;
	case MSG_NOTIFY:
		notify_subscribe();
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
	case MSG_MOUNT:
		handle_mount(f);
		break;
	case MSG_NETCONF:
		handle_netconf(f);
		break;
	case MSG_STAT:
		send_activity();
		break;
	case MSG_IDENTITY:
		handle_identity(f);
		break;
	default:
		break;
	}
}

void poweroff_now(void)
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

void main_loop(int sigfd)
{
	for (;;) {
		struct pollfd pfd[2 + 2 * MAX_SESSIONS + NOTIFY_POLLFDS];
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
		int to = g.host_down ? 100 : !g.acked ? 250 : pending_finish ? 200 : -1, lt = listeners_timeout_ms();
		if (lt >= 0 && (to < 0 || lt < to))
			to = lt;
		int nt = notify_pollfds(&pfd[n]), ntt = notify_timeout_ms();
		if (ntt >= 0 && (to < 0 || ntt < to))
			to = ntt;
		int r = poll(pfd, (nfds_t)(n + nt), to);
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
		listeners_tick();
		notify_tick(&pfd[n], r > 0 ? nt : 0);
		for (int i = 0; i < MAX_SESSIONS; i++)
			if (g.s[i])
				session_maybe_finish(g.s[i]);
		if (g.poweroff) {
			g.poweroff = false;
			poweroff_now();
		}
	}
}

int main(int argc, char **argv)
{
	int tool = getpid() == 1 ? -1 : desktop_tool_main(argc, argv);
	if (tool >= 0)
		return tool;
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
		disk_root_from_cmdline(cmdline);
		mounts_from_cmdline(cmdline);
		setup_hostname(cmdline);
		desktop_console_banner();
		loopback_up();
		net_setup(cmdline);
		setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
	} else {
		/* Orphans of exec sessions reparent to us, so we see when an app's session is gone. */
		prctl(PR_SET_CHILD_SUBREAPER, 1);
		cmdline = read_small_file("/proc/cmdline", 4096);
		disk_root_grow_from_cmdline(cmdline);
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
