/* Shared by the agent's files: the global state, the session table and the wire helpers. */
#pragma once
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

struct agent_state {
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
};
extern struct agent_state g;

void logmsg(const char *fmt, ...);
uint64_t mono_ms(void);
int write_all(int fd, const void *buf, size_t len);
/* path as text, through tmp (same directory: fsync, then rename), with mode; -1 and errno on
 * failure, tmp removed. */
int write_text_atomic(const char *path, const char *tmp, const char *text, mode_t mode);
void send_frame(uint8_t type, uint32_t channel, const void *payload, size_t len);
void send_buf(uint8_t type, uint32_t channel, struct proto_buf *payload);
void send_error(uint32_t channel, const char *fmt, ...);
int open_port(void);
void send_pong(const struct proto_frame *ping);
void send_hello(void);
void mount_api_filesystems(void);
char *read_small_file(const char *path, size_t max);
void load_modules(const char *release, const char *cmdline);
void setup_hostname(const char *cmdline);
void loopback_up(void);
struct session *session_find(uint32_t channel);
int session_count(void);
void close_fd(int *fd);
void send_activity(void);
void handle_exec(const struct proto_frame *f);
void session_maybe_finish(struct session *s);
void reap_children(void);
void session_read(struct session *s, int *fdp, uint8_t type, bool *eof);
void session_flush_stdin(struct session *s);
void hostile_main(const char *cmdline, int sigfd);
void handle_frame(const struct proto_frame *f);
void mounts_from_cmdline(const char *cmdline);	   /* mounts.c: micro, before HELLO */
void disk_root_from_cmdline(const char *cmdline);  /* rootfs.c: micro with hutch.root=, first */
void handle_mount(const struct proto_frame *f);	   /* mounts.c: MSG_MOUNT from the host */
void handle_identity(const struct proto_frame *f); /* identity.c */
/* rootfs.c: a bootc image's root (hutch.growroot=), by the agent as a service */
void disk_root_grow_from_cmdline(const char *cmdline);
void poweroff_now(void);
void main_loop(int sigfd);
void net_setup(const char *cmdline);			   /* net.c: links, NAT, DNS from hutch.net* */
bool net_is_netvm(void);				   /* net.c: hutch.netvm=1 on the command line */
void handle_netconf(const struct proto_frame *f);	   /* net.c: MSG_NETCONF from the host */
void dns_forwarder_start(const uint32_t *addrs, size_t n); /* dns.c */
void listeners_subscribe(void);				   /* listeners.c: MSG_LISTENERS from the host */
int listeners_timeout_ms(void);				   /* -1: not watching */
void listeners_tick(void);
void notify_subscribe(void);		/* notify.c: MSG_NOTIFY from the host */
int notify_timeout_ms(void);		/* -1: not forwarding */
int notify_pollfds(struct pollfd *pfd); /* at most NOTIFY_POLLFDS */
void notify_tick(const struct pollfd *pfd, int n);
void notify_session_env(uid_t uid); /* exec.c: DBUS_SESSION_BUS_ADDRESS of uid's bus */
#define NOTIFY_POLLFDS 8
/* desktop.c, clipboard.c, sound.c: `hutch-agent --TOOL ...` run by the host through EXEC as
 * /proc/self/exe; desktop_tool_main returns -1 when argv names no tool. */
int desktop_tool_main(int argc, char **argv);
void desktop_console_banner(void);
int clipboard_tool(int argc, char **argv);
int desktop_entries_tool(int argc, char **argv);
int icon_tool(int argc, char **argv);
int tone_tool(int argc, char **argv);
