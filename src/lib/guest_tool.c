/* The host side of the agent's tools. Output lands in a sealed memfd the size of the cap: the
 * guest can not make us hold more than that, however much it sends. */
#include "guest_tool.h"

#include "session.h"

#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define TOOL_STDERR_MAX 4096

static int capped_memfd(const char *what, size_t cap, struct hutch_error *err)
{
	int fd = memfd_create(what, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return hutch_error_set(err, errno, "memfd_create: %s", strerror(errno));
	if (ftruncate(fd, (off_t)cap) < 0 || fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK) < 0) {
		int e = errno;
		close(fd);
		return hutch_error_set(err, e, "sealing a memfd: %s", strerror(e));
	}
	return fd;
}

/* Read back the first `pos` bytes of a memfd written from offset 0. */
static char *memfd_take(int fd, size_t pos)
{
	char *buf = xmalloc(pos + 1);
	size_t got = 0;
	while (got < pos) {
		ssize_t n = pread(fd, buf + got, pos - got, (off_t)got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	buf[got] = 0;
	return buf;
}

int guest_tool_run(const struct store *st, const char *name, char *const *args, const void *in, size_t in_len,
		   size_t max, char **ret, size_t *ret_len, struct hutch_error *err)
{
	/* one byte more than the cap, so "exactly max" and "more" can be told apart */
	_cleanup_close_ int out = capped_memfd("hutch-tool-out", max + 1, err);
	if (out < 0)
		return out;
	_cleanup_close_ int errfd = capped_memfd("hutch-tool-err", TOOL_STDERR_MAX, err);
	if (errfd < 0)
		return errfd;
	_cleanup_close_ int infd = -1;
	if (in) {
		infd = memfd_create("hutch-tool-in", MFD_CLOEXEC);
		if (infd < 0 || write_all(infd, in, in_len) < 0 || lseek(infd, 0, SEEK_SET) < 0)
			return hutch_error_set(err, errno, "memfd: %s", strerror(errno));
	} else {
		infd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
	char **argv = strv_push(NULL, xstrdup("/proc/self/exe"));
	for (size_t i = 0; args[i]; i++)
		argv = strv_push(argv, xstrdup(args[i]));
	struct exec_opts o = {
		.argv = argv,
		.user = "root",
		.forward_stdin = in != NULL,
		.in_fd = infd,
		.out_fd = out,
		.err_fd = errfd,
	};
	int status = 0;
	struct hutch_error serr = {0};
	int r = exec_session(st, name, &o, &status, &serr);
	strv_free(argv);
	off_t pos = lseek(out, 0, SEEK_CUR);
	if (pos > (off_t)max) {
		hutch_error_clear(&serr);
		return hutch_error_set(err, EFBIG, "the guest sent more than %zu bytes", max);
	}
	if (r < 0) {
		hutch_error_clear(err);
		*err = serr;
		return r;
	}
	if (status != 0) {
		off_t epos = lseek(errfd, 0, SEEK_CUR);
		_cleanup_free_ char *msg = memfd_take(errfd, epos > 0 ? (size_t)epos : 0);
		msg[strcspn(msg, "\n")] = 0;
		for (char *p = msg; *p; p++)
			if ((unsigned char)*p < 32 || (unsigned char)*p > 126)
				*p = '?'; /* guest text, shown to the user: printable ASCII only */
		if (status == 2 && strstr(msg, "more than"))
			return hutch_error_set(err, EFBIG, "in the guest: %s", msg);
		return hutch_error_set(err, EIO, "the guest tool failed (exit %d)%s%s", status, *msg ? ": " : "", msg);
	}
	*ret = memfd_take(out, (size_t)pos);
	*ret_len = (size_t)pos;
	return 0;
}
