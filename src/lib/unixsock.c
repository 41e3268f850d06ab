/* Unix stream sockets by path, with the sun_path bound checked first. */
#include "unixsock.h"

#include "store.h"

#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

/* A socket and its address, or < 0 with err set (a path too long for sun_path says so). */
static int unix_socket(const char *path, struct sockaddr_un *sa, struct hutch_error *err)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return store_check_sun_path(path, err);
	strcpy(sa->sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return hutch_error_set(err, errno, "socket: %s", strerror(errno));
	return fd;
}

int unix_listen(const char *path, struct hutch_error *err)
{
	struct sockaddr_un sa;
	int fd = unix_socket(path, &sa, err);
	if (fd < 0)
		return fd;
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
		int e = errno;
		close(fd);
		return hutch_error_set(err, e, "cannot listen on '%s': %s", path, strerror(e));
	}
	return fd;
}

int unix_connect(const char *path, struct hutch_error *err)
{
	struct sockaddr_un sa;
	int fd = unix_socket(path, &sa, err);
	if (fd < 0)
		return fd;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		return hutch_error_set(err, e, "cannot connect to '%s': %s", path, strerror(e));
	}
	return fd;
}
