/* swtpm: TPM 2.0 emulation for QEMU's tpm-emulator backend, a child process on a unix socket that
 * exits when QEMU disconnects (--terminate). The monitor runs one per VM with a TPM; a warm
 * template's VM (warm.c) runs one while it boots and is saved. */
#pragma once
#include "util.h"

#include <sys/types.h>

/* The swtpm binary: HUTCH_SWTPM, else /usr/bin/swtpm. */
const char *swtpm_binary(void);
/* Start swtpm with its state in state_dir (made 0700), its control socket at sock and its log at
 * log, and wait (5 s at most) for the socket. *ret_pid: the child, to reap. */
int swtpm_spawn(const char *state_dir, const char *sock, const char *log, pid_t *ret_pid, struct hutch_error *err);
