#include "store.h"

#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>

static char *xdg(const char *env, const char *home_rel)
{
	const char *v = getenv(env);
	if (v && v[0] == '/')
		return xasprintf("%s/hutch", v);
	const char *home = getenv("HOME");
	if (!home || home[0] != '/')
		return NULL;
	return xasprintf("%s/%s/hutch", home, home_rel);
}

int store_open(struct store *ret, struct hutch_error *err)
{
	memset(ret, 0, sizeof(*ret));
	const char *hh = getenv("HUTCH_HOME");
	if (hh && *hh) {
		if (hh[0] != '/')
			return hutch_error_set(err, EINVAL, "HUTCH_HOME must be an absolute path, not '%s'", hh);
		ret->config_dir = xasprintf("%s/config", hh);
		ret->data_dir = xasprintf("%s/data", hh);
		ret->cache_dir = xasprintf("%s/cache", hh);
		ret->runtime_dir = xasprintf("%s/run", hh);
		return 0;
	}
	ret->config_dir = xdg("XDG_CONFIG_HOME", ".config");
	ret->data_dir = xdg("XDG_DATA_HOME", ".local/share");
	ret->cache_dir = xdg("XDG_CACHE_HOME", ".cache");
	const char *rt = getenv("XDG_RUNTIME_DIR");
	struct stat st;
	if (rt && rt[0] == '/' && stat(rt, &st) == 0 && st.st_uid == getuid())
		ret->runtime_dir = xasprintf("%s/hutch", rt);
	else
		ret->runtime_dir = xasprintf("/tmp/hutch-%u", (unsigned)getuid());
	if (!ret->config_dir || !ret->data_dir || !ret->cache_dir) {
		store_release(ret);
		return hutch_error_set(err, EINVAL, "HOME is not set: set HOME or HUTCH_HOME");
	}
	return 0;
}

void store_release(struct store *s)
{
	free(s->config_dir);
	free(s->data_dir);
	free(s->cache_dir);
	free(s->runtime_dir);
	memset(s, 0, sizeof(*s));
}

int store_xdg_dir(const char *hutch_sub, const char *xdg_var, const char *home_sub, char **ret, struct hutch_error *err)
{
	const char *hh = getenv("HUTCH_HOME");
	if (hh && *hh) {
		if (hh[0] != '/')
			return hutch_error_set(err, EINVAL, "HUTCH_HOME must be an absolute path, not '%s'", hh);
		*ret = xasprintf("%s/%s", hh, hutch_sub);
		return 0;
	}
	const char *x = getenv(xdg_var);
	if (x && x[0] == '/') {
		*ret = xstrdup(x);
		return 0;
	}
	const char *home = getenv("HOME");
	if (!home || home[0] != '/')
		return hutch_error_set(err, EINVAL, "HOME is not set: set HOME or HUTCH_HOME");
	*ret = xasprintf("%s/%s", home, home_sub);
	return 0;
}

int store_user_config_home(char **ret, struct hutch_error *err)
{
	return store_xdg_dir("config", "XDG_CONFIG_HOME", ".config", ret, err);
}

bool store_name_valid(const char *name)
{
	if (!name || !((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9')))
		return false;
	size_t n = strlen(name);
	if (n > 63)
		return false;
	for (size_t i = 1; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return false;
	}
	return true;
}

int store_check_name(const char *name, struct hutch_error *err)
{
	if (store_name_valid(name))
		return 0;
	if (!name || !*name)
		return hutch_error_set(err, EINVAL, "a VM name must not be empty");
	if (strlen(name) > 63)
		return hutch_error_set(err, EINVAL, "invalid VM name '%.70s...': longer than 63 characters", name);
	return hutch_error_set(
		err, EINVAL,
		"invalid VM name '%s': use lowercase letters, digits and '-', starting with a letter or digit", name);
}

char *store_vm_dir(const struct store *s, const char *name) { return xasprintf("%s/vms/%s", s->data_dir, name); }

char *store_vm_file(const struct store *s, const char *name, const char *file)
{
	return xasprintf("%s/vms/%s/%s", s->data_dir, name, file);
}

char *store_run_dir(const struct store *s, const char *name) { return xasprintf("%s/%s", s->runtime_dir, name); }

char *store_run_file(const struct store *s, const char *name, const char *file)
{
	return xasprintf("%s/%s/%s", s->runtime_dir, name, file);
}

int store_check_sun_path(const char *path, struct hutch_error *err)
{
	struct sockaddr_un sa;
	if (strlen(path) >= sizeof(sa.sun_path))
		return hutch_error_set(err, ENAMETOOLONG,
				       "socket path '%s' is %zu bytes, longer than the %zu that unix sockets allow: "
				       "use a shorter XDG_RUNTIME_DIR or HUTCH_HOME",
				       path, strlen(path), sizeof(sa.sun_path) - 1);
	return 0;
}

int store_prepare_run_dir(const struct store *s, const char *name, struct hutch_error *err)
{
	static const char *const socks[] = {"monitor.sock", "qmp.sock", "agent.sock", "console.sock", "qmp-user.sock"};
	for (size_t i = 0; i < ARRAY_SIZE(socks); i++) {
		_cleanup_free_ char *p = store_run_file(s, name, socks[i]);
		int r = store_check_sun_path(p, err);
		if (r < 0)
			return r;
	}
	int r = mkdir_p(s->runtime_dir, 0700);
	if (r < 0)
		return hutch_error_set(err, -r, "cannot create '%s': %s", s->runtime_dir, strerror(-r));
	struct stat st;
	if (lstat(s->runtime_dir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid())
		return hutch_error_set(err, EPERM, "'%s' is not a directory owned by this user", s->runtime_dir);
	_cleanup_free_ char *d = store_run_dir(s, name);
	if (mkdir(d, 0700) < 0 && errno != EEXIST)
		return hutch_error_set(err, errno, "cannot create '%s': %s", d, strerror(errno));
	/* what a monitor that died left of the last boot (ready.c's cloud-init state) */
	_cleanup_free_ char *stale = store_run_file(s, name, "cloud-init.final");
	unlink(stale);
	return 0;
}

bool store_vm_exists(const struct store *s, const char *name)
{
	_cleanup_free_ char *p = store_vm_file(s, name, "spec.yml");
	return access(p, F_OK) == 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int store_list(const struct store *s, char ***ret_names, struct hutch_error *err)
{
	_cleanup_free_ char *dir = xasprintf("%s/vms", s->data_dir);
	char **names = xcalloc(1, sizeof(char *));
	DIR *d = opendir(dir);
	if (!d) {
		if (errno == ENOENT) {
			*ret_names = names;
			return 0;
		}
		free(names);
		return hutch_error_set(err, errno, "cannot read '%s': %s", dir, strerror(errno));
	}
	struct dirent *de;
	/* A VM exists when its spec.yml does: a dir left by a failed create, or one holding only a
	 * disk kept by destroy, is not a VM. */
	while ((de = readdir(d)))
		if (store_name_valid(de->d_name) && store_vm_exists(s, de->d_name))
			names = strv_push(names, xstrdup(de->d_name));
	closedir(d);
	qsort(names, strv_len(names), sizeof(char *), cmp_str);
	*ret_names = names;
	return 0;
}

/* flock, then make sure the file we locked is still the one at path: a destroyer may have
 * unlinked it between our open and our flock. */
static int lock_once(const char *path, int *ret_fd)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	/* OFD locks: owned by the open file description, so they pass to the monitor with the fd and
	 * can be queried (F_OFD_GETLK) without being taken. */
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
		int e = errno == EACCES ? EWOULDBLOCK : errno;
		close(fd);
		return -e;
	}
	struct stat a, b;
	if (fstat(fd, &a) < 0 || stat(path, &b) < 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
		close(fd);
		return -ESTALE; /* replaced under us: retry */
	}
	*ret_fd = fd;
	return 0;
}

int store_lock_file(const char *path, uint64_t timeout_ms, int *ret_fd, struct hutch_error *err)
{
	uint64_t deadline = now_ms() + timeout_ms;
	unsigned delay_us = 2000;
	for (;;) {
		int r = lock_once(path, ret_fd);
		if (r == 0)
			return 0;
		if (r == -ESTALE)
			continue;
		if (r != -EWOULDBLOCK)
			return hutch_error_set(err, -r, "cannot lock '%s': %s", path, strerror(-r));
		if (r == -EWOULDBLOCK && timeout_ms == 0)
			return -EWOULDBLOCK;
		if (r == -EWOULDBLOCK && now_ms() >= deadline)
			return hutch_error_set(err, EBUSY, "busy: another hutch command holds '%s'", path);
		usleep(delay_us);
		if (delay_us < 50000)
			delay_us *= 2;
	}
}

int store_lock_op(const struct store *s, const char *name, uint64_t timeout_ms, int *ret_fd, struct hutch_error *err)
{
	/* The op lock lives beside the VM dirs so it exists before the VM does and survives destroy. */
	_cleanup_free_ char *dir = xasprintf("%s/vms", s->data_dir);
	int r = mkdir_p(dir, 0700);
	if (r < 0)
		return hutch_error_set(err, -r, "cannot create '%s': %s", dir, strerror(-r));
	_cleanup_free_ char *p = xasprintf("%s/.%s.lock", dir, name);
	r = store_lock_file(p, timeout_ms, ret_fd, err);
	if (r == -EWOULDBLOCK)
		return hutch_error_set(err, EBUSY, "busy: another hutch command is working on '%s'", name);
	if (r == -EBUSY)
		return hutch_error_set(err, EBUSY, "busy: another hutch command is working on '%s'", name);
	return r;
}

int store_lock_run(const struct store *s, const char *name, int *ret_fd, struct hutch_error *err)
{
	_cleanup_free_ char *p = store_run_file(s, name, "lock");
	int r = store_lock_file(p, 0, ret_fd, err);
	if (r == -EWOULDBLOCK)
		return hutch_error_set(err, EALREADY, "already running");
	return r;
}

bool store_is_running(const struct store *s, const char *name)
{
	_cleanup_free_ char *p = store_run_file(s, name, "lock");
	_cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return false;
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
		return false;
	return fl.l_type != F_UNLCK;
}

int store_write_state(const struct store *s, const char *name, const char *json, struct hutch_error *err)
{
	_cleanup_free_ char *p = store_vm_file(s, name, "state.json");
	return write_file_atomic(p, json, strlen(json), 0600, err);
}

char *store_read_state(const struct store *s, const char *name)
{
	_cleanup_free_ char *p = store_vm_file(s, name, "state.json");
	char *buf = NULL;
	size_t len;
	if (read_file(p, 1 << 20, &buf, &len, NULL) < 0)
		return NULL;
	return buf;
}
