/* Connections to libvirt: which URI a VM uses, opening it (bounded), and libvirt's errors as ours.
 * libvirt itself is loaded on first use (lazyvirt.h). */
#pragma once
#include "spec.h"
#include "store.h"
#include "util.h"

#define VIRT_DEFAULT_URI "qemu:///session"
#define VIRT_CONNECT_TIMEOUT_MS 15000
#define VIRT_PACKAGES "libvirt0, libvirt-daemon-driver-qemu and libvirt-clients"

/* The VM's URI: its spec's uri, else config.yml's libvirt.uri, else qemu:///session. */
int virt_uri_for(const struct store *st, const struct vm_spec *spec, char **ret, struct hutch_error *err);

/* Load libvirt (an error naming the Debian packages when it is missing), start its event loop on a
 * helper thread (keepalives, streams, events), and open URI within timeout_ms. *ret is a
 * virConnectPtr. For a session URI that fails, the error says which sockets were tried. */
int virt_open(const char *uri, uint64_t timeout_ms, void **ret, struct hutch_error *err);
void virt_close(void *conn);
/* Forget a URI's cached connection or failure: the next virt_open really tries (events reconnect). */
void virt_forget(const char *uri);
/* The libvirt backend's small state files (started-at, forwards, the last domain XML, stop notes):
 * tmp then rename, whole or not at all, but not fsynced: each is rewritten at the next start, and an
 * fsync under a busy disk cost start and stop hundreds of ms. */
int virt_state_write(const char *path, const char *text);
/* libvirt's last error, or fallback. */
const char *virt_last_error(const char *fallback);
