/* Reaching the sshd of a libvirt VM (`hutch ssh`). A libvirt VM's forwards bind the loopback of the
 * host its QEMU runs on: for a remote URI that is the far host, so ssh jumps through it. */
#pragma once
#include "spec.h"
#include "store.h"
#include "util.h"

/* The ProxyCommand that reaches 127.0.0.1 of the libvirt host of uri, through the same ssh, user,
 * port and key libvirt itself uses there (the URI's command= and keyfile=): *ret NULL for a URI
 * of this host (no host part); -ENOTSUP for a remote transport other than ssh. */
int virt_ssh_proxy(const char *uri, char **ret, struct hutch_error *err);

/* start: an image or bootc VM on user networking with an ssh key gets a forward from a free
 * loopback port to its sshd, as the qemu backend's monitor gives it, unless the spec already
 * forwards that guest port. It is added to spec->forward (in memory), which the domain and the
 * forwards file of `hutch port ls` are made from. */
int virt_ssh_auto_forward(const struct store *st, struct vm_spec *spec, const char *name, struct hutch_error *err);
