/* The libvirt backend's entry points beside struct backend_ops (backend_libvirt.c). */
#pragma once
#include "backend.h"

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
/* The URI the VM uses (into *ret, which the caller frees), NULL when unknown. */
const char *libvirt_uri_of(struct vm *vm, char **ret);
/* create and run: the VM's backend, fixed at create: --backend, else the spec's, else config.yml's
 * (qemu when none says); --connect URI sets the libvirt URI and implies libvirt. */
int backend_choose(const struct store *st, struct vm_spec *spec, const char *backend, const char *uri,
		   struct hutch_error *err);
