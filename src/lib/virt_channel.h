/* The guest agent's virtio-serial channel through libvirt (virDomainOpenChannel): the bytes travel
 * over libvirt's own connection, so no socket path on the (maybe remote) host is assumed. */
#pragma once
#include "util.h"

/* Open org.hutch.agent.0 of a running domain (conn: virConnectPtr, dom: virDomainPtr) and wait up to
 * timeout_ms for the agent's HELLO. *ret_fd is a local socket that speaks the agent protocol (the
 * HELLO exchange done); closing it closes the channel. -EBUSY when another session holds it.
 * timeout_ms 0: no waiting for the agent's HELLO; our answer to it is written at once (stop's POWEROFF). */
int virt_channel_open(void *conn, void *dom, uint64_t timeout_ms, int *ret_fd, char *ret_release, size_t release_len,
		      struct hutch_error *err);
