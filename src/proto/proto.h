/* hutch wire protocol, shared by the guest agent, the monitor and the CLI.
 *
 * Frame: u32 len | u8 type | u32 channel | payload[len], little-endian. len <= PROTO_MAX_PAYLOAD.
 * Payload fields are encoded with proto_put_* and read with proto_get_*, which check every length.
 * Self-contained (no libc extensions beyond C11 + POSIX) because the static musl agent links it. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_VERSION 1
#define PROTO_MAX_PAYLOAD (1024u * 1024u)
#define PROTO_HDR_SIZE 9u
#define PROTO_AGENT_PORT "org.hutch.agent.0"
#define PROTO_MAX_ARGS 4096u		 /* argv / env entries in one EXEC */
#define PROTO_WINDOW_INIT (256u * 1024u) /* initial per-channel credit, bytes */
#define PROTO_HELLO_QUERY 1u		 /* caps of a host HELLO: say HELLO again */

enum proto_type {
	MSG_HELLO = 1, /* u32 version, u32 caps, str kernel_release. From the agent: here I am, said
			* until the host answers. From the host: the answer (caps 0), or with
			* PROTO_HELLO_QUERY a request to say HELLO again. */
	MSG_EXEC = 2,  /* u8 flags, u16 rows, u16 cols, str cwd, str user, strv argv, strv env */
	MSG_STDIN = 3, /* bytes */
	MSG_STDIN_EOF = 4,
	MSG_STDOUT = 5,	 /* bytes; empty payload = EOF */
	MSG_STDERR = 6,	 /* bytes; empty payload = EOF */
	MSG_EXIT = 7,	 /* u8 kind (enum proto_exit_kind), i32 code */
	MSG_SIGNAL = 8,	 /* u32 signo */
	MSG_WINSIZE = 9, /* u16 rows, u16 cols */
	MSG_WINDOW = 10, /* u32 credit bytes granted to the peer for this channel */
	MSG_PING = 11,	 /* u64 token */
	MSG_PONG = 12,	 /* u64 token */
	MSG_POWEROFF = 13,
	MSG_MOUNT = 14, /* host -> agent: str tag, str path, u8 flags (enum proto_mount_flags): mount a
			 * share; agent -> host, the answer: the same, then i32 errno (0: mounted) and
			 * str message */
	MSG_STAT = 15,
	MSG_ACTIVITY = 16,  /* u32 sessions, u32 live process groups */
	MSG_ERROR = 17,	    /* str message */
	MSG_CTL = 18,	    /* CLI <-> monitor only: JSON text */
	MSG_IDENTITY = 19,  /* host -> agent, a clone restored from a warm template: u64 realtime_ns,
			    * str hostname, str machine_id, u32 n + n bytes of host entropy */
	MSG_LISTENERS = 20, /* listeners.h: the guest's TCP listeners, for auto_forward */
	MSG_NETCONF = 21,   /* host -> agent: u8 0, str words (hutch.netup=... as on a micro kernel command
			     * line): set up the netvm links; agent -> host: u8 1, i32 errno (0: done), str
			     * message */
	MSG_NOTIFY = 22,    /* notification.h: a desktop notification from the guest */
	MSG_TYPE_MAX = 22,
};

enum proto_exec_flags {
	EXEC_TTY = 1u << 0,
	EXEC_STDIN = 1u << 1, /* the client will send stdin; otherwise stdin is /dev/null */
	EXEC_LOGIN = 1u << 2, /* argv[0] gets a leading '-' (login shell) */
	EXEC_APP = 1u << 3,   /* counts as an app for auto_shutdown.on_app_exit */
};

enum proto_exit_kind {
	EXIT_CODE = 0,
	EXIT_SIGNAL = 1,
	EXIT_FAILED = 2, /* could not start: code is an errno */
	EXIT_LOST = 3,	 /* monitor -> CLI only: the agent or the VM went away mid-session; code is an
			  * errno. The program's result is unknown. An agent never sends it. */
};

struct proto_frame {
	uint8_t type;
	uint32_t channel;
	uint32_t len;
	const uint8_t *payload; /* points into the reader's buffer; valid until the next call */
};

/* Incremental frame reader over a byte stream. */
struct proto_reader {
	uint8_t *buf;
	size_t len, cap;
	size_t consumed; /* bytes of buf already handed out */
};
void proto_reader_init(struct proto_reader *r);
void proto_reader_free(struct proto_reader *r); /* leaves r empty, as proto_reader_init does */
/* Append bytes (copied). Returns 0 or -1 when they would not fit the bound (protocol error). */
int proto_reader_feed(struct proto_reader *r, const void *data, size_t len);
/* read(2) once from fd into the reader. Returns bytes read, 0 on EOF, -1 on error (errno). */
long proto_reader_read_fd(struct proto_reader *r, int fd);
/* 1 = a frame is in *f, 0 = need more bytes, -1 = malformed (bad type or oversized length). */
int proto_reader_next(struct proto_reader *r, struct proto_frame *f);

/* Growable encode buffer. */
struct proto_buf {
	uint8_t *data;
	size_t len, cap;
	bool oom;
};
void proto_buf_free(struct proto_buf *b);
void proto_put_u8(struct proto_buf *b, uint8_t v);
void proto_put_u16(struct proto_buf *b, uint16_t v);
void proto_put_u32(struct proto_buf *b, uint32_t v);
void proto_put_u64(struct proto_buf *b, uint64_t v);
void proto_put_bytes(struct proto_buf *b, const void *p, size_t n);
void proto_put_str(struct proto_buf *b, const char *s);	  /* u32 len + bytes (no NUL) */
void proto_put_strv(struct proto_buf *b, char *const *v); /* u32 count + strs */
/* Append a whole frame (header + payload) to out. -1 when payload is too large. */
int proto_frame_append(struct proto_buf *out, uint8_t type, uint32_t channel, const void *payload, size_t len);

/* Bounds-checked payload decoder. Any failure latches ok=false; check it once at the end. */
struct proto_cursor {
	const uint8_t *p;
	size_t left;
	bool ok;
};
void proto_cursor_init(struct proto_cursor *c, const void *p, size_t len);
uint8_t proto_get_u8(struct proto_cursor *c);
uint16_t proto_get_u16(struct proto_cursor *c);
uint32_t proto_get_u32(struct proto_cursor *c);
uint64_t proto_get_u64(struct proto_cursor *c);
/* Returns a malloc'd NUL-terminated copy, or NULL (and ok=false) when truncated, longer than max,
 * or containing a NUL byte. */
char *proto_get_str(struct proto_cursor *c, size_t max);
/* NULL-terminated malloc'd vector; at most max_n entries, each at most max_len. */
char **proto_get_strv(struct proto_cursor *c, size_t max_n, size_t max_len);
void proto_strv_free(char **v);

/* Decoded messages. */
struct proto_hello {
	uint32_t version;
	uint32_t caps;
	char *kernel_release;
};
int proto_decode_hello(const struct proto_frame *f, struct proto_hello *ret);
void proto_hello_free(struct proto_hello *h);
void proto_encode_hello(struct proto_buf *b, uint32_t version, uint32_t caps, const char *release);

struct proto_exec {
	uint8_t flags;
	uint16_t rows, cols;
	char *cwd;  /* may be "" */
	char *user; /* may be "" */
	char **argv;
	char **env;
};
int proto_decode_exec(const struct proto_frame *f, struct proto_exec *ret);
void proto_exec_free(struct proto_exec *e);
void proto_encode_exec(struct proto_buf *b, const struct proto_exec *e);

struct proto_exit {
	uint8_t kind;
	int32_t code;
};
int proto_decode_exit(const struct proto_frame *f, struct proto_exit *ret);
void proto_encode_exit(struct proto_buf *b, uint8_t kind, int32_t code);

/* MSG_IDENTITY. The entropy is at most PROTO_IDENTITY_ENTROPY_MAX bytes. */
#define PROTO_IDENTITY_ENTROPY_MAX 4096u
struct proto_identity {
	uint64_t realtime_ns;
	char *hostname;	  /* at most 64 bytes */
	char *machine_id; /* 32 lowercase hex digits */
	uint8_t *entropy;
	uint32_t entropy_len;
};
void proto_encode_identity(struct proto_buf *b, uint64_t realtime_ns, const char *hostname, const char *machine_id,
			   const void *entropy, size_t entropy_len);
int proto_decode_identity(const struct proto_frame *f, struct proto_identity *ret);
void proto_identity_free(struct proto_identity *id);

/* MSG_MOUNT. The guest names tags and its own mount points, never a host path. */
#define PROTO_MOUNT_TAG_MAX 36u
#define PROTO_MOUNT_PATH_MAX 255u
#define PROTO_MOUNT_MSG_MAX 200u
enum proto_mount_flags {
	MOUNT_RO = 1u << 0,
	MOUNT_VIRTIOFS = 1u << 1, /* else 9p */
	MOUNT_HOME = 1u << 2,	  /* the user's home: its root is chowned to the user */
};
struct proto_mount {
	char *tag;
	char *path;
	uint8_t flags;
	bool answer; /* agent -> host: err and msg are set */
	int32_t err;
	char *msg;
};
void proto_encode_mount(struct proto_buf *b, const char *tag, const char *path, uint8_t flags);
void proto_encode_mount_answer(struct proto_buf *b, const struct proto_mount *m, int32_t err, const char *msg);
int proto_decode_mount(const struct proto_frame *f, struct proto_mount *ret);
void proto_mount_free(struct proto_mount *m);

/* MSG_NETCONF. The words are the host's (netvm.c: net_cmdline); the answer's message is the guest's. */
#define PROTO_NETCONF_WORDS_MAX 4096u
#define PROTO_NETCONF_MSG_MAX 300u
struct proto_netconf {
	bool answer;
	char *words; /* the request */
	int32_t err; /* the answer */
	char *msg;
};
void proto_encode_netconf(struct proto_buf *b, const char *words);
void proto_encode_netconf_answer(struct proto_buf *b, int32_t err, const char *msg);
int proto_decode_netconf(const struct proto_frame *f, struct proto_netconf *ret);
void proto_netconf_free(struct proto_netconf *n);

int proto_decode_u32(const struct proto_frame *f, uint32_t *ret); /* SIGNAL, WINDOW */
int proto_decode_winsize(const struct proto_frame *f, uint16_t *rows, uint16_t *cols);
const char *proto_type_name(uint8_t type);
