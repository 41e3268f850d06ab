/* The display and sound devices of a VM: QEMU options, sockets and the viewer's URI. */
#pragma once
#include "qemu.h"

/* HUTCH_TEST_AUDIO_WAV=FILE: record the guest's playback into FILE with QEMU's wav audiodev (for
 * tests: it needs no sound server). Not a user setting. */
#define DESKTOP_ENV_WAV "HUTCH_TEST_AUDIO_WAV"

/* Does the spec need a PCI bus (intel-hda) that micro VMs only get with microvm's pcie=on? */
bool desktop_needs_pci(const struct vm_spec *s);
/* Append -device/-vnc/-spice/-audiodev options to *argv. */
int desktop_qemu_args(const struct qemu_config *c, char ***argv, struct hutch_error *err);
/* The remote display's socket in the run dir (NULL when none or when it listens on TCP). */
char *desktop_socket_path(const struct vm_spec *s, const char *run_dir);
/* spice+unix:///…/spice.sock, vnc+unix:///…/vnc.sock, spice://127.0.0.1:PORT or vnc://127.0.0.1:PORT.
 * -ENODEV with a message when the VM has no remote display. */
int desktop_uri(const struct vm_spec *s, const char *run_dir, char **ret, struct hutch_error *err);
