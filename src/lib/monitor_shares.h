/* The monitor's side of shares: one virtiofsd per virtiofs share (our children like swtpm, gone
 * with the VM), a MOUNT request per share after each new agent's HELLO, and the guest's answers,
 * kept for `start` (which waits for them, bounded) and for status/inspect. */
#pragma once
#include "proto.h"
#include "shares.h"

#include <json-c/json.h>

#define MON_SHARES_ANSWER_MS 10000 /* how long start waits for the agent's mount answers */

enum mount_state { MOUNT_NOT_ASKED = 0, MOUNT_PENDING, MOUNT_DONE, MOUNT_FAILED, MOUNT_NO_ANSWER };

struct mon_shares {
	const struct shares *plan; /* the qemu plan's, borrowed */
	pid_t pid[SHARES_MAX];	   /* virtiofsd */
	enum mount_state state[SHARES_MAX];
	char why[SHARES_MAX][PROTO_MOUNT_MSG_MAX + 1];
	uint64_t asked_at; /* when the MOUNTs went out; 0: no answers outstanding */
};

/* Start virtiofsd for each virtiofs share and wait (bounded) for its socket; logs go to
 * VM_DIR/virtiofsd-TAG.log. */
int mon_shares_start(struct mon_shares *ms, const struct shares *plan, const char *vm_dir, struct hutch_error *err);
/* A child exited: true when it was one of ours (its description in what). */
bool mon_shares_reap(struct mon_shares *ms, pid_t pid, int status, char *what, size_t len);
void mon_shares_stop(struct mon_shares *ms);

/* After a new agent's HELLO: the MOUNT payload for share i into b; false past the last. */
bool mon_shares_request(struct mon_shares *ms, size_t i, struct proto_buf *b, uint64_t now);
/* The agent's answer to a MOUNT: -1 when malformed; answers for tags we did not ask about are
 * dropped (the guest names no host path: the answer only updates a share of the plan). */
int mon_shares_answer(struct mon_shares *ms, const struct proto_frame *f);
/* Every share's mount has an outcome (mounted, failed, or no answer in time); true without shares. */
bool mon_shares_settled(const struct mon_shares *ms);
/* Answers still outstanding (and not yet given up on). */
bool mon_shares_waiting(const struct mon_shares *ms);
/* When to give up waiting; UINT64_MAX: not waiting. */
uint64_t mon_shares_deadline(const struct mon_shares *ms);
void mon_shares_expire(struct mon_shares *ms, uint64_t now);

/* For status: [{tag, host, mount, readonly, via, why, security_model, state, error, warning}]. */
json_object *mon_shares_json(const struct mon_shares *ms);
/* One line about every share that is not mounted or has a warning, NULL when all is well. */
char *mon_shares_problems(const struct mon_shares *ms);
