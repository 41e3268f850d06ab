/* The libvirt backend's entry points beside struct backend_ops (backend_libvirt.c). */
#pragma once
#include "backend.h"

#include <json-c/json.h>

extern const struct backend_ops backend_libvirt;
/* create: define the persistent domain (disposable VMs get a transient one at start instead). */
int libvirt_define(struct vm *vm, struct hutch_error *err);
/* destroy: undefine it, NVRAM included; a running domain is -EBUSY unless force. */
int libvirt_undefine(struct vm *vm, bool force, struct hutch_error *err);
/* exec, shell, run, cp: 1 with *ret_fd speaking the agent protocol (HELLO done) when NAME is a
 * libvirt VM, 0 when it is not one (use the monitor), < 0 on error. */
int libvirt_session_connect(const struct store *st, const char *name, int *ret_fd, struct hutch_error *err);
/* usb attach|detach: 1 when NAME is a libvirt VM and the device was attached to (or detached from)
 * the live domain with virDomainAttachDevice/DetachDevice, 0 when it is not one, < 0 on error. */
int libvirt_usb(const struct store *st, const char *name, unsigned vendor, unsigned product, unsigned bus, unsigned dev,
		bool attach, struct hutch_error *err);
/* autostart on|off: the domain's own flag (virDomainSetAutostart). 0 when NAME is not a libvirt VM,
 * or has no persistent domain (disposable VMs), < 0 on error. */
int libvirt_autostart(const struct store *st, const char *name, bool on, struct hutch_error *err);
/* A running domain of this VM: *ret_conn (virConnectPtr) and *ret_dom (virDomainPtr), for
 * libvirt_domain_close; -ENOTCONN when it is not running. */
int libvirt_domain_open(struct vm *vm, void **ret_conn, void **ret_dom, struct hutch_error *err);
void libvirt_domain_close(void *conn, void *dom);
/* The VM's defined domain, running or not (snapshots); -ENOENT when libvirt has none. */
int libvirt_domain_lookup(struct vm *vm, void **ret_conn, void **ret_dom, struct hutch_error *err);
/* port add|rm|ls (virt_port.c): 1 with *ret {"ok", "forwards"} when NAME is a libvirt VM, 0 when it
 * is not one (ask the monitor), < 0 on error. op: port-add, port-rm, port-ls. */
int libvirt_port(struct store *st, const char *name, const char *op, const char *spec, json_object **ret,
		 struct hutch_error *err);
/* The supervisor's auto_shutdown stop (virt_watch.c): lv_stop's steps, the stopped event saying
 * reason and detail; it does not wait for the run lock, which the caller holds. */
int libvirt_policy_stop(struct vm *vm, const char *reason, const char *detail, uint64_t timeout_ms,
			struct hutch_error *err);
/* start of a VM whose run lock is held: true when NAME is a libvirt VM whose domain is not running
 * and whose supervisor, on its way out, let go of the lock within a few seconds. */
bool libvirt_settle(struct store *st, const char *name);
/* start: host port 0 in the spec's forwards (any free port) becomes a free port, in memory, before
 * the domain is rendered: QEMU would bind one nobody could look up. */
int libvirt_ports_resolve(struct vm *vm, struct hutch_error *err);
/* start: the forwards in effect are the spec's again (the runtime ones went with the old QEMU). */
void libvirt_ports_reset(struct vm *vm);
/* list (virt_list.c): the state of every libvirt VM among names, in the same order (libvirt false for
 * the others), with one call per URI, all URIs bounded together. error: why the state is unknown. */
struct libvirt_state {
	bool libvirt, known, running, paused;
	uint64_t uptime_s;
	char *error;
};
int libvirt_states(struct store *st, char *const *names, struct libvirt_state **ret);
void libvirt_states_free(struct libvirt_state *s, size_t n);
/* The URI the VM uses (into *ret, which the caller frees), NULL when unknown. */
const char *libvirt_uri_of(struct vm *vm, char **ret);
/* create and run: the VM's backend, fixed at create: --backend, else the spec's, else config.yml's
 * (qemu when none says); --connect URI sets the libvirt URI and implies libvirt. */
int backend_choose(const struct store *st, struct vm_spec *spec, const char *backend, const char *uri,
		   struct hutch_error *err);
