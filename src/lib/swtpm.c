/* swtpm (swtpm.h). */
#include "swtpm.h"

#include "store.h"

#include <fcntl.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

const char *swtpm_binary(void)
{
	const char *bin = getenv("HUTCH_SWTPM");
	return bin && *bin ? bin : "/usr/bin/swtpm";
}

int swtpm_spawn(const char *state_dir, const char *sock, const char *log, pid_t *ret_pid, struct hutch_error *err)
{
	*ret_pid = 0;
	int r = store_check_sun_path(sock, err);
	if (r < 0)
		return r;
	if (mkdir_p(state_dir, 0700) < 0)
		return hutch_error_set(err, errno, "cannot create '%s': %s", state_dir, strerror(errno));
	const char *bin = swtpm_binary();
	if (access(bin, X_OK) < 0)
		return hutch_error_set(err, ENOENT, "swtpm not found: install Debian's swtpm and swtpm-tools packages");
	unlink(sock);
	_cleanup_free_ char *state_arg = xasprintf("dir=%s,mode=0600", state_dir);
	_cleanup_free_ char *ctrl_arg = xasprintf("type=unixio,path=%s", sock);
	_cleanup_free_ char *log_arg = xasprintf("file=%s", log);
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return hutch_error_set(err, errno, "fork: %s", strerror(errno));
	if (pid == 0) {
		child_die_with_parent(parent);
		int nul = open("/dev/null", O_RDWR);
		dup2(nul, 0);
		dup2(nul, 1);
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
		execl(bin, bin, "socket", "--tpm2", "--tpmstate", state_arg, "--ctrl", ctrl_arg, "--terminate", "--log",
		      log_arg, (char *)NULL);
		_exit(127);
	}
	/* bounded wait for its socket */
	for (int i = 0; i < 500; i++) {
		if (access(sock, F_OK) == 0) {
			*ret_pid = pid;
			return 0;
		}
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid)
			return hutch_error_set(err, EIO, "swtpm exited at start (see %s)", log);
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return hutch_error_set(err, ETIMEDOUT, "swtpm did not create its socket within 5 s (see %s)", log);
}
