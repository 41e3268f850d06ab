#include "events.h"

#include "backend.h"
#include "virt_conn.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>

char *events_line(const char *name, const char *backend, const char *event, const char *reason, const char *detail)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "time_ms", json_object_new_int64((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000));
	json_object_object_add(o, "vm", json_object_new_string(name));
	json_object_object_add(o, "backend", json_object_new_string(backend ? backend : "qemu"));
	json_object_object_add(o, "event", json_object_new_string(event));
	if (reason)
		json_object_object_add(o, "reason", json_object_new_string(reason));
	if (detail) {
		/* the one unbounded field: keep the line under EVENTS_LINE_MAX with room for escapes */
		size_t n = strnlen(detail, EVENTS_LINE_MAX / 4);
		json_object_object_add(o, "detail", json_object_new_string_len(detail, (int)n));
	}
	char *s = xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	if (strlen(s) >= EVENTS_LINE_MAX)
		s[EVENTS_LINE_MAX - 1] = 0; /* cannot happen with the bounds above; a cut line is dropped */
	return s;
}

/* Open events.jsonl for appending, locked, rotated when past the cap. A writer that opened the file
 * just before another one rotated it checks, under the lock, that its fd is still the file by that
 * name. */
static int open_locked(const char *path, const char *old)
{
	for (int tries = 0; tries < 5; tries++) {
		int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0)
			return -errno;
		struct stat a, b;
		if (flock(fd, LOCK_EX) < 0 || fstat(fd, &a) < 0) {
			close(fd);
			return -EIO;
		}
		if (stat(path, &b) < 0 || a.st_ino != b.st_ino) {
			close(fd);
			continue;
		}
		if (a.st_size < EVENTS_FILE_MAX)
			return fd;
		rename(path, old); /* the follower drains the old file before it opens the new one */
		close(fd);
	}
	return -EAGAIN;
}

int events_append(const struct store *st, const char *name, const char *backend, const char *event, const char *reason,
		  const char *detail)
{
	_cleanup_free_ char *path = store_vm_file(st, name, EVENTS_FILE);
	_cleanup_free_ char *old = store_vm_file(st, name, EVENTS_FILE ".1");
	_cleanup_free_ char *line = events_line(name, backend, event, reason, detail);
	int fd = open_locked(path, old);
	if (fd < 0)
		return fd;
	size_t n = strlen(line);
	line[n] = '\n'; /* one write of the whole line: O_APPEND keeps concurrent lines whole */
	ssize_t w = write(fd, line, n + 1);
	line[n] = 0;
	close(fd);
	return w == (ssize_t)(n + 1) ? 0 : -EIO;
}

/* ---- following ---- */

struct followed {
	char name[64];
	int wd;
	int fd; /* events.jsonl, -1 while there is none */
	struct strbuf part;
	bool libvirt_checked;
};

struct follower {
	const struct store *st;
	const char *only;
	events_cb cb;
	void *userdata;
	int ino, root_wd, pipe[2];
	char *vms_dir;
	struct followed **f;
	size_t n;
	struct strbuf pipe_part;
};

static int deliver(struct follower *fl, const char *line)
{
	json_object *o = json_tokener_parse(line), *v;
	int r = 0;
	if (o && json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, "event", &v) &&
	    json_object_object_get_ex(o, "vm", &v) && (!fl->only || !strcmp(json_object_get_string(v), fl->only)))
		r = fl->cb(o, fl->userdata);
	json_object_put(o);
	return r;
}

/* Whole lines from fd; a line longer than EVENTS_LINE_MAX is nobody's event and is skipped. */
static int drain(struct follower *fl, int fd, struct strbuf *part)
{
	char buf[4096];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] != '\n') {
				if (part->len < EVENTS_LINE_MAX)
					strbuf_addch(part, buf[i]);
				else
					part->len = EVENTS_LINE_MAX + 1; /* too long: dropped at its newline */
				continue;
			}
			int r = part->len <= EVENTS_LINE_MAX && part->buf ? deliver(fl, part->buf) : 0;
			strbuf_reset(part);
			if (r)
				return r;
		}
	}
}

static struct followed *find_wd(struct follower *fl, int wd)
{
	for (size_t i = 0; i < fl->n; i++)
		if (fl->f[i] && fl->f[i]->wd == wd)
			return fl->f[i];
	return NULL;
}

static struct followed *find_name(struct follower *fl, const char *name)
{
	for (size_t i = 0; i < fl->n; i++)
		if (fl->f[i] && !strcmp(fl->f[i]->name, name))
			return fl->f[i];
	return NULL;
}

/* A libvirt VM: make sure its URI is subscribed (once its spec is there). */
static void check_libvirt(struct follower *fl, struct followed *f)
{
	if (f->libvirt_checked || (fl->only && strcmp(fl->only, f->name)))
		return;
	_cleanup_free_ char *spec = store_vm_file(fl->st, f->name, "spec.yml");
	if (access(spec, F_OK) != 0)
		return;
	f->libvirt_checked = true;
	struct vm vm;
	if (vm_load((struct store *)fl->st, f->name, &vm, NULL) < 0)
		return;
	if (vm.spec->backend && !strcmp(vm.spec->backend, "libvirt")) {
		_cleanup_free_ char *uri = NULL;
		if (virt_uri_for(fl->st, vm.spec, &uri, NULL) == 0)
			virt_events_watch(fl->st, uri, fl->pipe[1], NULL);
	}
	vm_release(&vm);
}

/* (Re)open events.jsonl: from its start when it is new to us, else from its end (old events are
 * not news). What the previous file still held is read first. */
static int open_events(struct follower *fl, struct followed *f, bool at_end)
{
	int r = 0;
	if (f->fd >= 0) {
		r = drain(fl, f->fd, &f->part);
		close(f->fd);
		f->fd = -1;
	}
	strbuf_reset(&f->part);
	_cleanup_free_ char *path = store_vm_file(fl->st, f->name, EVENTS_FILE);
	f->fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
	if (f->fd >= 0 && at_end)
		lseek(f->fd, 0, SEEK_END);
	if (!r && f->fd >= 0 && !at_end)
		r = drain(fl, f->fd, &f->part);
	return r;
}

static int add_vm(struct follower *fl, const char *name, bool at_end)
{
	if (!store_name_valid(name) || find_name(fl, name))
		return 0;
	_cleanup_free_ char *dir = store_vm_dir(fl->st, name);
	int wd = inotify_add_watch(fl->ino, dir, IN_CREATE | IN_MOVED_TO | IN_MODIFY | IN_DELETE_SELF | IN_ONLYDIR);
	if (wd < 0)
		return 0; /* gone already */
	struct followed *f = xcalloc(1, sizeof(*f));
	snprintf(f->name, sizeof(f->name), "%s", name);
	f->wd = wd;
	f->fd = -1;
	fl->f = xrealloc(fl->f, (fl->n + 1) * sizeof(*fl->f));
	fl->f[fl->n++] = f;
	check_libvirt(fl, f);
	return open_events(fl, f, at_end);
}

static void drop_vm(struct follower *fl, struct followed *f)
{
	for (size_t i = 0; i < fl->n; i++)
		if (fl->f[i] == f)
			fl->f[i] = NULL;
	if (f->fd >= 0)
		close(f->fd);
	strbuf_release(&f->part);
	free(f);
}

static int on_inotify(struct follower *fl)
{
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	for (;;) {
		ssize_t n = read(fl->ino, buf, sizeof(buf));
		if (n <= 0)
			return 0;
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *e = (struct inotify_event *)p;
			p += sizeof(*e) + e->len;
			const char *what = e->len ? e->name : "";
			int r = 0;
			struct followed *f = e->wd == fl->root_wd ? NULL : find_wd(fl, e->wd);
			if (e->wd == fl->root_wd) {
				if ((e->mask & (IN_CREATE | IN_MOVED_TO)) && (e->mask & IN_ISDIR))
					r = add_vm(fl, what, false);
			} else if (!f) {
				continue;
			} else if (e->mask & (IN_DELETE_SELF | IN_IGNORED)) {
				if (f->fd >= 0)
					r = drain(fl, f->fd, &f->part);
				drop_vm(fl, f);
			} else if (!strcmp(what, EVENTS_FILE) && (e->mask & (IN_CREATE | IN_MOVED_TO))) {
				r = open_events(fl, f, false);
			} else if (!strcmp(what, EVENTS_FILE) && (e->mask & IN_MODIFY) && f->fd >= 0) {
				r = drain(fl, f->fd, &f->part);
			} else if (!strcmp(what, "spec.yml")) {
				check_libvirt(fl, f);
			}
			if (r)
				return r;
		}
	}
}

static void follower_release(struct follower *fl)
{
	for (size_t i = 0; i < fl->n; i++)
		if (fl->f[i])
			drop_vm(fl, fl->f[i]);
	free(fl->f);
	free(fl->vms_dir);
	strbuf_release(&fl->pipe_part);
	if (fl->ino >= 0)
		close(fl->ino);
	/* the pipe stays open: libvirt's callbacks may still write to it from their thread */
}

int events_follow(const struct store *st, const char *only, events_cb cb, void *userdata, struct hutch_error *err)
{
	struct follower fl = {.st = st, .only = only, .cb = cb, .userdata = userdata, .ino = -1};
	fl.vms_dir = xasprintf("%s/vms", st->data_dir);
	if (mkdir_p(fl.vms_dir, 0700) < 0)
		return hutch_error_set(err, errno, "cannot make '%s': %s", fl.vms_dir, strerror(errno));
	if (pipe2(fl.pipe, O_CLOEXEC) < 0)
		return hutch_error_set(err, errno, "pipe: %s", strerror(errno));
	fd_set_nonblock(fl.pipe[0], true);
	fl.ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	fl.root_wd = fl.ino < 0 ? -1 : inotify_add_watch(fl.ino, fl.vms_dir, IN_CREATE | IN_MOVED_TO | IN_ONLYDIR);
	if (fl.root_wd < 0) {
		int r = hutch_error_set(err, errno, "cannot watch '%s': %s", fl.vms_dir, strerror(errno));
		follower_release(&fl);
		return r;
	}
	int r = 0;
	DIR *d = opendir(fl.vms_dir);
	for (struct dirent *de; !r && d && (de = readdir(d));)
		if (de->d_name[0] != '.')
			r = add_vm(&fl, de->d_name, true);
	if (d)
		closedir(d);
	uint64_t checked = now_ms();
	while (!r) {
		struct pollfd p[2] = {{.fd = fl.ino, .events = POLLIN}, {.fd = fl.pipe[0], .events = POLLIN}};
		int k = poll(p, 2, 5000);
		if (k < 0 && errno != EINTR) {
			r = hutch_error_set(err, errno, "poll: %s", strerror(errno));
			break;
		}
		if (p[0].revents & POLLIN)
			r = on_inotify(&fl);
		if (!r && (p[1].revents & POLLIN))
			r = drain(&fl, fl.pipe[0], &fl.pipe_part);
		if (now_ms() - checked >= 5000) {
			checked = now_ms();
			virt_events_check(st, fl.pipe[1]);
		}
	}
	follower_release(&fl);
	return r < 0 ? r : 0;
}
