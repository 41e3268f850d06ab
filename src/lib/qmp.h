/* QMP client (json-c). Bounded waits, events queued while waiting for a reply, replies matched by id. */
#pragma once
#include "util.h"
#include <json-c/json.h>

#define QMP_MAX_MESSAGE (10 * 1024 * 1024)

struct qmp;

/* Wrap a connected stream socket (takes ownership of fd). Reads the greeting and negotiates
 * capabilities (qmp_capabilities), all within timeout_ms. */
int qmp_open(int fd, uint64_t timeout_ms, struct qmp **ret, struct hutch_error *err);
void qmp_close(struct qmp *q);
static inline void qmp_closep(struct qmp **q)
{
	if (*q)
		qmp_close(*q);
}
int qmp_fd(const struct qmp *q);

/* Execute a command and wait up to timeout_ms for the reply with the matching id. args may be NULL
 * (ownership of args is taken). On {"error": ...} returns -EREMOTEIO with the class and desc in
 * err. *ret_return (optional) receives the "return" member (caller puts it). */
int qmp_execute(struct qmp *q, const char *cmd, json_object *args, uint64_t timeout_ms, json_object **ret_return,
		struct hutch_error *err);

/* An HMP command line through QMP's human-monitor-command (hostfwd_add/remove, savevm, loadvm, delvm:
 * QMP has no native form of them). NULL q is ENOTCONN. Their reply is judged by qmp_hmp_reply. */
int qmp_hmp(struct qmp *q, const char *line, uint64_t timeout_ms, struct hutch_error *err);
/* The commands hutch sends through HMP print nothing when they work, except hostfwd_remove's
 * "... removed"; any other text is QEMU's error (EIO, its first line). Also for libvirt's HMP path. */
int qmp_hmp_reply(const char *out, struct hutch_error *err);

/* Non-blocking: read whatever is available on the socket (call when poll says readable). Parsed
 * events are queued. Returns 0, or < 0 on EOF (-EPIPE) or protocol error. */
int qmp_process_input(struct qmp *q, struct hutch_error *err);
/* Pop the next queued event (caller puts it), or NULL. */
json_object *qmp_next_event(struct qmp *q);

/* At most this many events are held; when full the oldest is dropped. */
#define QMP_MAX_EVENTS 1000

/* Wrap fd (may be -1) without reading the greeting or negotiating: for tests and fuzzing, and for
 * callers that have done the handshake elsewhere. Takes ownership of fd. */
struct qmp *qmp_new(int fd);
/* Parse bytes as if they had been read from the socket: events are queued, replies not waited for
 * are discarded. Returns 0 or < 0 (-EMSGSIZE, -EPROTO); a failed reader stays failed. */
int qmp_feed(struct qmp *q, const void *buf, size_t len, struct hutch_error *err);
