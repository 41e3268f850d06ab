/* What the monitor's files share: its state (struct mon), its clients and channels, and the
 * functions one file calls in another. monitor.c: the loop, QEMU, stop and lifecycle;
 * monitor_agent.c: the agent channel and its liveness; monitor_ctl.c: CLI requests and sessions. */
#pragma once
#include "monitor.h"
#include "events.h"
#include "failed.h"
#include "monitor_balloon.h"
#include "monitor_usb.h"
#include "autofwd.h"
#include "monitor_net.h"
#include "monitor_shares.h"
#include "monitor_desktop.h"
#include "unixsock.h"
#include "snapshot.h"
#include "warm.h"
#include "proto.h"
#include "qemu.h"
#include "qmp.h"
#include <dirent.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#define MAX_CLIENTS 128
#define CLIENT_OUT_MAX (16u * 1024 * 1024)
#define AGENT_OUT_MAX (32u * 1024 * 1024)
#define MAX_CHANNELS 1024
/* A disposable VM whose run client never came is stopped this long after HELLO, or after the last
 * session a client ran in it (start's own readiness checks, which can outlast HELLO by minutes
 * on a cloud image): then the run that was to come is gone. */
#define EPHEMERAL_GRACE_MS 60000
/* Liveness: an agent that has said nothing for AGENT_QUIET_MS while sessions are open, or before a
 * new session starts, is pinged; one that does not answer within AGENT_PING_MS is unresponsive.
 * Generous for TCG under load: a busy guest still answers within milliseconds to a few seconds. */
#define AGENT_QUIET_MS 5000
#define AGENT_PING_MS 10000
#define HMP_MS 5000	    /* hostfwd_add/remove through QMP */
#define AGENT_QUERY_MS 3000 /* asking a reopened port's agent for its HELLO */
#define WARM_HELLO_MS 8000  /* a restored clone's agent answers the HELLO query in this, or it boots cold */
/* EXECs (and what their clients send after them) held until the agent answers a ping. */
#define HELD_MAX (16u * 1024 * 1024)

/* waiting: no HELLO yet (booting, or the guest reopened the port); gone: the guest closed the agent
 * port; unresponsive: it is open but the agent does not answer (stopped, frozen, the VM paused);
 * broken: it sent something malformed and we closed our end. */
enum agent_state { AGENT_WAITING = 0, AGENT_READY, AGENT_BROKEN, AGENT_GONE, AGENT_UNRESPONSIVE };
extern const char *const agent_state_names[];

struct outbuf {
	struct proto_buf b;
	size_t off;
};

struct client {
	int fd;
	struct proto_reader rd;
	struct outbuf out;
	bool wants_stop_reply; /* answer when QEMU is gone */
	bool is_run;	       /* a `run` session: counts for on_app_exit / ephemeral */
	bool closing;
};

struct channel {
	uint32_t id;	   /* agent-side channel */
	struct client *cl; /* NULL once the client went away */
	uint32_t cl_chan;  /* client-side channel */
	bool app;
	uint64_t credit; /* bytes the agent may still send us on this channel */
	char prog[48];	 /* what runs, for messages: the basename of argv[0] */
	bool holding;	 /* its EXEC waits in held until the agent answers a ping */
	struct proto_buf held;
};

struct mon {
	struct store *st;
	const struct monitor_args *a;
	char *name, *run_dir, *vm_dir;
	struct vm vm;
	struct qemu_plan plan;
	pid_t qemu_pid;
	bool spawn_exited;	    /* the last QEMU ended before QMP was up: spawn_status says how */
	uint64_t client_session_at; /* the last session frame from a client (EPHEMERAL_GRACE_MS) */
	int spawn_status;
	int qemu_status;
	bool qemu_exited;
	int sigfd, listen_fd, agent_fd;
	struct qmp *qmp;
	struct proto_reader agent_rd;
	struct outbuf agent_out;
	enum agent_state agent_state;
	int64_t agent_since; /* wall clock, s: when agent_state last changed */
	char agent_why[160];
	uint64_t agent_heard; /* when the agent last sent anything */
	uint64_t ping_sent;   /* when the outstanding PING went out; 0: none */
	uint64_t ping_last;
	uint64_t ping_token;
	size_t held_bytes;
	bool paused;		  /* QMP STOP seen, no RESUME yet */
	uint64_t query_at;	  /* the guest reopened the agent port: when we last asked for HELLO; 0: not asking */
	char shutdown_reason[32]; /* QMP SHUTDOWN's reason: guest-shutdown, guest-reset, guest-panic... */
	char kernel_release[64];
	struct client *clients[MAX_CLIENTS];
	struct channel *chans[MAX_CHANNELS];
	uint32_t next_chan;
	uint64_t t_start, t_spawn, t_qmp, t_hello, t_boot_deadline;
	uint64_t t_restored; /* a clone's restore finished, until its agent answered; 0: not waiting */
	enum stop_step stop_step;
	uint64_t stop_deadline, stop_begun;
	uint64_t stop_total_ms;
	char stop_method[32];
	char stop_why[96]; /* begin_stop's why, for the stopped event */
	char exit_reason[256];
	int apps_started, apps_live;
	uint64_t last_activity;
	bool boot_reported;
	bool run_client_seen;
	pid_t swtpm_pid;
	struct mon_shares shares;   /* virtiofsd children and the guest's mount answers */
	struct mon_net net;	    /* netvm links (monitor_net.h) */
	struct autofwd autofwd;	    /* auto_forward (autofwd.h) */
	struct mon_balloon balloon; /* the balloon policy (monitor_balloon.h) */
	char **forwards;	    /* active port forwards, as "HOST:GUEST/proto" */
	struct warm_clone *warm;    /* a clone of a warm template (warm.h), or NULL */
};

int count_sessions(struct mon *m);
int pick_forward(struct mon *m, struct forward *f, struct hutch_error *err);
struct channel *chan_by_client(struct mon *m, struct client *c, uint32_t cl_chan);
struct channel *chan_by_id(struct mon *m, uint32_t id);
void accept_clients(struct mon *m);
void agent_broken(struct mon *m, const char *why);
void agent_gone(struct mon *m, const char *why);
void agent_hello_ack(struct mon *m, uint32_t caps);
void agent_ping(struct mon *m);
void agent_readable(struct mon *m);
void agent_reconnect(struct mon *m);
void agent_release_held(struct mon *m);
void agent_send(struct mon *m, uint8_t type, uint32_t chan, const void *p, size_t len);
void agent_set_state(struct mon *m, enum agent_state st, const char *why);
void agent_unresponsive(struct mon *m, const char *why);
void begin_stop(struct mon *m, bool force, uint64_t total_ms, const char *why);
void chan_free(struct mon *m, struct channel *ch);
void chan_hangup(struct mon *m, struct channel *ch);
void chan_hold(struct mon *m, struct channel *ch, uint8_t type, const void *p, size_t len);
void client_end_session(struct client *c, uint32_t chan, const char *msg, uint8_t kind, int code);
void client_readable(struct mon *m, struct client *c);
void client_send(struct client *c, uint8_t type, uint32_t chan, const void *p, size_t len);
void client_send_error(struct client *c, uint32_t chan, const char *msg);
void client_send_json(struct client *c, json_object *o);
void mon_log(struct mon *m, const char *fmt, ...) _printf_(2, 3);
void net_log(const char *line);
void notify_error(struct mon *m, const char *msg);
void notify_ready(struct mon *m);
void outbuf_compact(struct outbuf *o);
void outbuf_frame(struct outbuf *o, uint8_t type, uint32_t chan, const void *p, size_t len);
void session_refuse(struct mon *m, struct client *c, uint32_t cl_chan);
