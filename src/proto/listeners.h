/* MSG_LISTENERS: the guest's listening TCP ports, for auto_forward. Shared by the agent and the
 * monitor. Host -> agent, empty: report them (now and whenever they change). Agent -> host:
 * u32 flags, u32 n, n x u16 port, strictly ascending (a set), at most PROTO_LISTENERS_MAX. */
#pragma once
#include "proto.h"

#define PROTO_LISTENERS_MAX 1024u
#define PROTO_LISTENERS_TRUNCATED 1u /* the guest listens on more ports than the report holds */

void proto_encode_listeners(struct proto_buf *b, uint32_t flags, const uint16_t *ports, size_t n);
/* Into ports[PROTO_LISTENERS_MAX]. -1 on anything but an exact, ascending, in-bounds report. */
int proto_decode_listeners(const void *payload, size_t len, uint32_t *ret_flags, uint16_t *ports, size_t *ret_n);
