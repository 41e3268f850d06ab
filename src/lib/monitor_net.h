/* The monitor's side of netvm links (netvm.h). A client's NIC hangs on a hub port; the monitor
 * joins the hub to the netvm's socket with a stream netdev and a second hub port over QMP, and when
 * the link drops (NETDEV_STREAM_DISCONNECTED: the netvm stopped or restarted) it deletes both and
 * adds them again until the netvm answers: QEMU 7.2's stream client never reconnects by itself. A
 * netvm's side listens and QEMU listens again when its client goes; the monitor only watches it. */
#pragma once
#include "netvm.h"
#include "proto.h"
#include "qmp.h"
#include "util.h"

#include <json-c/json.h>

enum mon_link_state { LINK_DOWN = 0, LINK_CONNECTING, LINK_UP };

struct mon_link {
	char *peer;    /* the other end's VM */
	char *netdev;  /* our netdev id: NET_UP_STREAM_ID, or downN */
	uint32_t addr; /* our address on it */
	uint32_t peer_addr;
	enum mon_link_state state;
	uint64_t since;	   /* wall clock, s */
	uint64_t retry_at; /* client side: when to join again (monotonic ms), 0 = not due */
	unsigned joins;	   /* how often the client side joined */
	char *sock;
};

enum mon_netconf_state { NETCONF_NONE = 0, NETCONF_PENDING, NETCONF_DONE, NETCONF_FAILED, NETCONF_NO_ANSWER };

struct mon_net {
	char *name;
	struct mon_link *links; /* [0] is the uplink when has_up, then one per client */
	size_t n;
	bool has_up;
	/* The guest's side (agent/net.c): the words sent in MSG_NETCONF after each HELLO, and what the
	 * agent answered. NULL words: the VM has no links. */
	char *words;
	enum mon_netconf_state guest;
	char guest_why[PROTO_NETCONF_MSG_MAX + 1];
	uint64_t asked_at;
};
#define MON_NETCONF_ANSWER_MS 30000 /* an image guest runs ip and nft, under TCG and load */

/* Before QEMU starts: the links from the plan, and no stale socket where the netvm's QEMU listens. */
void mon_net_init(struct mon_net *n, const char *name, const struct net_plan *p);
void mon_net_release(struct mon_net *n);
/* After the QMP handshake: join the uplink. log receives one line per change (may be NULL). */
void mon_net_start(struct mon_net *n, struct qmp *q, void (*log)(const char *line));
/* A QMP event: true when it was a link's (and has been handled). */
bool mon_net_event(struct mon_net *n, struct qmp *q, const char *event, json_object *data,
		   void (*log)(const char *line));
/* The next retry (monotonic ms), UINT64_MAX when none; tick does what is due. */
uint64_t mon_net_deadline(const struct mon_net *n);
/* Rejoins a client's link when due; true when the guest's answer just timed out (start waits on it). */
bool mon_net_tick(struct mon_net *n, struct qmp *q, uint64_t now, void (*log)(const char *line));
/* MSG_NETCONF for the agent after its HELLO, when the VM has links (false: nothing to send). */
bool mon_net_request(struct mon_net *n, struct proto_buf *b, uint64_t now);
/* The agent's answer; -1 when it is malformed. */
int mon_net_answer(struct mon_net *n, const struct proto_frame *f);
/* start waits for the answer (or MON_NETCONF_ANSWER_MS). */
bool mon_net_settled(const struct mon_net *n);
/* "" when the guest set its links up, else what went wrong, for start's warning. Owned by the caller. */
char *mon_net_problem(const struct mon_net *n);
/* {"ok":true,"links":[{"peer","role","addr","peer_addr","state","since","joins"}]} for `net ls`. */
json_object *mon_net_json(const struct mon_net *n);
