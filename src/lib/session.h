/* CLI side of an exec session: EXEC over the monitor socket, then stream stdio until EXIT. */
#pragma once
#include "store.h"
#include "util.h"

struct exec_opts {
	char **argv; /* argv[0] "" with login = the user's login shell */
	char **env;  /* K=V */
	const char *cwd;
	const char *user;
	bool tty; /* allocate a pty in the guest; local stdin goes raw */
	bool forward_stdin;
	bool app; /* counts for auto_shutdown.on_app_exit */
	bool login;
	bool run_client;	   /* register as the VM's `run` client (disposable VMs stop when it leaves) */
	int in_fd, out_fd, err_fd; /* local ends, usually 0/1/2 */
};

/* Like ssh on a lost connection: the exit status of a session whose result is unknown. */
#define EXEC_STATUS_LOST 255

/* Runs the program and returns its exit status (0..255, or 128+N for a signal) in *ret_status.
 * Returns < 0 with err set when the program could not be run at all, and -ECONNRESET when the
 * session was lost while the program ran (the agent went away or stopped answering, the VM or
 * the monitor went down): its result is unknown, and callers exit EXEC_STATUS_LOST. */
int exec_session(const struct store *st, const char *name, const struct exec_opts *o, int *ret_status,
		 struct hutch_error *err);
/* The process exit code for exec_session's result r and status. */
int exec_exit_code(int r, int status);
