/* The per-VM monitor: QEMU's parent, holder of the run lock, QMP client, agent multiplexer. */
#pragma once
#include "backend.h"

struct monitor_args {
	const char *name;
	int lock_fd;   /* the run lock, already taken by the CLI and inherited */
	int notify_fd; /* write end of the CLI's readiness pipe, or -1 */
	uint64_t boot_timeout_ms;
	bool ephemeral; /* remove the VM's data dir after QEMU exits */
};

/* Runs until QEMU is gone. Returns a process exit code. */
int monitor_main(struct store *st, const struct monitor_args *a);

/* Stop escalation: agent POWEROFF, ACPI powerdown, QMP quit, SIGKILL. */
enum stop_step { STOP_NONE = 0, STOP_AGENT, STOP_ACPI, STOP_QUIT, STOP_KILL };
