/* Making disks: qcow2 overlays on a cached base with qemu-img (info memoised, blank overlays
 * copied instead of re-created). */
#include "image.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <poll.h>
#include <spawn.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "image_internal.h"

extern char **environ;

#define QEMU_IMG_OUTPUT_MAX (1024 * 1024)

/* ---- overlays ---- */

struct proc_out {
	struct strbuf out, err;
	int status; /* exit status, or 128 + signal */
};

static void proc_out_release(struct proc_out *p)
{
	strbuf_release(&p->out);
	strbuf_release(&p->err);
}

static void drain(int *fd, struct strbuf *sb)
{
	char buf[4096];
	ssize_t n = read(*fd, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		close(*fd);
		*fd = -1;
		return;
	}
	if (sb->len + (size_t)n <= QEMU_IMG_OUTPUT_MAX)
		strbuf_add(sb, buf, (size_t)n);
}

/* Run qemu-img with stdout and stderr captured separately (a warning must not break the JSON). */
/* A running qemu-img: its pid and the read ends of its stdout and stderr. */
struct qemu_img_proc {
	pid_t pid;
	int out, err;
};

static int qemu_img_spawn(char *const argv[], struct qemu_img_proc *ret, struct hutch_error *err)
{
	int po[2], pe[2];
	if (pipe2(po, O_CLOEXEC) < 0)
		return hutch_error_set(err, errno, "pipe: %s", strerror(errno));
	if (pipe2(pe, O_CLOEXEC) < 0) {
		int e = errno;
		close(po[0]);
		close(po[1]);
		return hutch_error_set(err, e, "pipe: %s", strerror(e));
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, po[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
	pid_t pid;
	int r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(po[1]);
	close(pe[1]);
	if (r != 0) {
		close(po[0]);
		close(pe[0]);
		if (r == ENOENT)
			return hutch_error_set(err, ENOENT,
					       "qemu-img not found: install the Debian package qemu-utils");
		return hutch_error_set(err, r, "cannot run qemu-img: %s", strerror(r));
	}
	*ret = (struct qemu_img_proc){pid, po[0], pe[0]};
	return 0;
}

/* Read qemu-img's output to EOF and reap it. */
static void qemu_img_collect(struct qemu_img_proc *q, struct proc_out *ret)
{
	struct proc_out p = {STRBUF_INIT, STRBUF_INIT, 0};
	int fds[2] = {q->out, q->err};
	while (fds[0] >= 0 || fds[1] >= 0) {
		struct pollfd pfd[2] = {{.fd = fds[0], .events = POLLIN}, {.fd = fds[1], .events = POLLIN}};
		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (fds[0] >= 0 && pfd[0].revents)
			drain(&fds[0], &p.out);
		if (fds[1] >= 0 && pfd[1].revents)
			drain(&fds[1], &p.err);
	}
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	int status = 0;
	while (waitpid(q->pid, &status, 0) < 0 && errno == EINTR)
		;
	p.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	if (!p.out.buf)
		strbuf_grow(&p.out, 0), p.out.buf[0] = 0;
	if (!p.err.buf)
		strbuf_grow(&p.err, 0), p.err.buf[0] = 0;
	*ret = p;
	*q = (struct qemu_img_proc){-1, -1, -1};
}

static int run_qemu_img(char *const argv[], struct proc_out *ret, struct hutch_error *err)
{
	struct qemu_img_proc q;
	int r = qemu_img_spawn(argv, &q, err);
	if (r < 0)
		return r;
	qemu_img_collect(&q, ret);
	return 0;
}

/* Turn qemu-img's stderr into one message: a lock conflict reads "in use". */
static int qemu_img_fail(const struct proc_out *p, const char *what, const char *path, struct hutch_error *err)
{
	const char *e = strbuf_str(&p->err);
	if (strstr(e, "Failed to get") && strstr(e, "lock")) {
		_cleanup_free_ char *who = NULL;
		const char *b = strstr(e, "using the image [");
		if (b) {
			b += strlen("using the image [");
			const char *end = strchr(b, ']');
			if (end)
				who = xstrndup(b, (size_t)(end - b));
		}
		return hutch_error_set(err, EBUSY, "disk image '%s' is in use by another process", who ? who : path);
	}
	const char *line = e;
	while (*line == '\n')
		line++;
	if (!strncmp(line, "qemu-img: ", 10))
		line += 10;
	size_t n = strcspn(line, "\n");
	if (n == 0)
		return hutch_error_set(err, EIO, "qemu-img %s failed for '%s' (exit status %d)", what, path, p->status);
	return hutch_error_set(err, EIO, "qemu-img %s failed for '%s': %.*s", what, path, (int)n, line);
}

struct base_info {
	char *format;
	uint64_t virtual_size;
};

static int base_info(const char *path, struct base_info *ret, struct hutch_error *err)
{
	char *const argv[] = {"qemu-img", "info", "--output=json", (char *)path, NULL};
	struct proc_out p;
	int r = run_qemu_img(argv, &p, err);
	if (r < 0)
		return r;
	if (p.status != 0) {
		r = qemu_img_fail(&p, "info", path, err);
		proc_out_release(&p);
		return r;
	}
	json_object *o = json_tokener_parse(strbuf_str(&p.out));
	proc_out_release(&p);
	json_object *fmt = NULL, *vs = NULL, *backing = NULL;
	if (!o || !json_object_object_get_ex(o, "format", &fmt) || !json_object_is_type(fmt, json_type_string) ||
	    !json_object_object_get_ex(o, "virtual-size", &vs) || !json_object_is_type(vs, json_type_int)) {
		json_object_put(o);
		return hutch_error_set(err, EIO, "cannot read the output of 'qemu-img info' for '%s'", path);
	}
	const char *f = json_object_get_string(fmt);
	if (strcmp(f, "qcow2") && strcmp(f, "raw"))
		r = hutch_error_set(err, EINVAL, "image '%s' has format '%s': only qcow2 and raw can be a base", path,
				    f);
	/* A base with a backing file of its own could point anywhere on the host. */
	else if (json_object_object_get_ex(o, "backing-filename", &backing))
		r = hutch_error_set(err, EINVAL, "image '%s' has a backing file of its own: refusing it as a base",
				    path);
	else if (json_object_get_int64(vs) < 0)
		r = hutch_error_set(err, EIO, "qemu-img reports a negative size for '%s'", path);
	if (r == 0) {
		ret->format = xstrdup(f);
		ret->virtual_size = (uint64_t)json_object_get_int64(vs);
	}
	json_object_put(o);
	return r;
}

/* base_info of a cached base, remembered beside it. A by-digest file never changes, but the memo
 * still records the file's identity and is ignored when that no longer matches. */
static void base_memo_sig(const struct stat *st, char *out, size_t n)
{
	snprintf(out, n, "%llu %llu %lld %lld.%09ld", (unsigned long long)st->st_dev, (unsigned long long)st->st_ino,
		 (long long)st->st_size, (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
}

static int base_info_cached(const char *abs, struct base_info *ret, struct hutch_error *err)
{
	_cleanup_free_ char *memo = image_base_extra_path(abs, "info");
	struct stat st;
	char sig[128] = "";
	if (memo && stat(abs, &st) == 0) {
		base_memo_sig(&st, sig, sizeof(sig));
		_cleanup_free_ char *text = image_read_small(memo, 4096);
		char fmt[16];
		unsigned long long vs;
		int off = 0;
		if (text && sscanf(text, "%15s %llu %n", fmt, &vs, &off) == 2 && off > 0 &&
		    !strcmp(text + off, sig) /* image_read_small drops the newline */ &&
		    (!strcmp(fmt, "qcow2") || !strcmp(fmt, "raw"))) {
			ret->format = xstrdup(fmt);
			ret->virtual_size = vs;
			return 0;
		}
	}
	int r = base_info(abs, ret, err);
	if (r == 0 && memo && *sig) {
		_cleanup_free_ char *line =
			xasprintf("%s %llu %s\n", ret->format, (unsigned long long)ret->virtual_size, sig);
		(void)write_file_atomic(memo, line, strlen(line), 0600, NULL); /* only a shortcut */
	}
	return r;
}

struct image_overlay_job {
	struct qemu_img_proc q; /* pid -1: the overlay was copied from a blank one, nothing runs */
	char *tmp, *overlay;
	char *blank; /* where to keep a copy of what qemu-img makes, or NULL */
};

static void overlay_job_free(struct image_overlay_job *j)
{
	free(j->tmp);
	free(j->overlay);
	free(j->blank);
	free(j);
}

/* A fresh overlay holds nothing but its header: the backing path and format and the size (qcow2
 * has no UUID or timestamp). So for a base in the image cache, the first overlay of each size is
 * kept beside the base as by-digest/.NAME.blank-SIZE-HASH.qcow2 (HASH: of the backing path, which
 * is in the header) and later ones are copies of it: no qemu-img. */
static char *blank_overlay_path(const char *abs, uint64_t size)
{
	char h[65];
	sha256_hex(abs, strlen(abs), h);
	_cleanup_free_ char *suffix = xasprintf("blank-%llu-%.16s.qcow2", (unsigned long long)size, h);
	return image_base_extra_path(abs, suffix);
}

#define BLANK_OVERLAY_MAX (16u << 20) /* a qcow2 header with L1 and refcount tables */

int image_overlay_start(const char *base, const char *overlay, uint64_t size, struct image_overlay_job **ret,
			struct hutch_error *err)
{
	if (!base || !*base || !overlay || !*overlay)
		return hutch_error_set(err, EINVAL, "overlay needs a base image and a path");
	_cleanup_free_ char *abs = realpath(base, NULL);
	if (!abs)
		return hutch_error_set(err, errno, "base image '%s': %s", base, strerror(errno));
	struct stat st;
	if (lstat(overlay, &st) == 0) {
		if (image_qemu_lock_held(overlay, IMAGE_QEMU_PERM_CONSISTENT_READ) ||
		    image_qemu_lock_held(overlay, IMAGE_QEMU_PERM_WRITE))
			return hutch_error_set(err, EBUSY, "disk '%s' is in use by another process", overlay);
		return hutch_error_set(err, EEXIST, "disk '%s' already exists", overlay);
	}
	/* qemu-img info and create -b do not take the locks that would notice a writer: ask directly. */
	if (image_qemu_lock_held(abs, IMAGE_QEMU_PERM_WRITE))
		return hutch_error_set(err, EBUSY, "base image '%s' is in use by another process that writes to it",
				       abs);
	struct base_info bi = {0};
	int r = base_info_cached(abs, &bi, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *fmt = bi.format;
	if (size && size < bi.virtual_size) {
		char want[32], have[32];
		return hutch_error_set(err, EINVAL, "disk size %s is smaller than the image's %s",
				       format_size(size, want, sizeof(want)),
				       format_size(bi.virtual_size, have, sizeof(have)));
	}
	struct image_overlay_job *j = xcalloc(1, sizeof(*j));
	j->tmp = xasprintf("%s.tmp.%d", overlay, (int)getpid());
	j->overlay = xstrdup(overlay);
	uint64_t vsize = size ? size : bi.virtual_size;
	unlink(j->tmp);
	_cleanup_free_ char *blank = blank_overlay_path(abs, vsize);
	if (blank && copy_file_atomic(blank, j->tmp, BLANK_OVERLAY_MAX, 0644, NULL) == 0) {
		j->q = (struct qemu_img_proc){-1, -1, -1};
		*ret = j;
		return 0;
	}
	j->blank = TAKE_PTR(blank);
	char sizebuf[32];
	snprintf(sizebuf, sizeof(sizebuf), "%llu", (unsigned long long)vsize);
	char *const argv[] = {"qemu-img", "create", "-q", "-f", "qcow2", "-F", fmt, "-b", abs, j->tmp, sizebuf, NULL};
	r = qemu_img_spawn(argv, &j->q, err);
	if (r < 0) {
		overlay_job_free(j);
		return r;
	}
	*ret = j;
	return 0;
}

int image_overlay_finish(struct image_overlay_job *j, struct hutch_error *err)
{
	struct proc_out p = {STRBUF_INIT, STRBUF_INIT, 0};
	if (j->q.pid > 0)
		qemu_img_collect(&j->q, &p);
	int r = 0;
	if (p.status == 0 && j->blank) /* only a shortcut for the next create */
		(void)copy_file_atomic(j->tmp, j->blank, BLANK_OVERLAY_MAX, 0644, NULL);
	if (p.status != 0) {
		r = qemu_img_fail(&p, "create", j->overlay, err);
		unlink(j->tmp);
	} else if (renameat2(AT_FDCWD, j->tmp, AT_FDCWD, j->overlay, RENAME_NOREPLACE) < 0) {
		int e = errno;
		unlink(j->tmp);
		if (e == EEXIST)
			r = hutch_error_set(err, EEXIST, "disk '%s' already exists", j->overlay);
		else
			r = hutch_error_set(err, e, "cannot rename '%s' to '%s': %s", j->tmp, j->overlay, strerror(e));
	} else {
		_cleanup_free_ char *parent = xstrdup(j->overlay);
		char *slash = strrchr(parent, '/');
		if (slash && slash != parent) {
			*slash = 0;
			image_fsync_dir(parent);
		}
	}
	proc_out_release(&p);
	overlay_job_free(j);
	return r;
}

void image_overlay_abort(struct image_overlay_job *j)
{
	if (!j)
		return;
	if (j->q.pid > 0) {
		kill(j->q.pid, SIGKILL);
		struct proc_out p;
		qemu_img_collect(&j->q, &p);
		proc_out_release(&p);
	}
	unlink(j->tmp);
	overlay_job_free(j);
}

int image_make_overlay(const char *base, const char *overlay, uint64_t size, struct hutch_error *err)
{
	struct image_overlay_job *j = NULL;
	int r = image_overlay_start(base, overlay, size, &j, err);
	return r < 0 ? r : image_overlay_finish(j, err);
}

int image_make_backed_overlay(const char *backing, const char *overlay, uint64_t size, struct hutch_error *err)
{
	if (!backing || backing[0] != '/' || !overlay || !*overlay || !size)
		return hutch_error_set(err, EINVAL, "an overlay on a backing file needs an absolute path and a size");
	char sizebuf[32];
	snprintf(sizebuf, sizeof(sizebuf), "%llu", (unsigned long long)size);
	char *const argv[] = {"qemu-img",      "create",	"-q",	 "-f", "qcow2", "-F", "qcow2", "-u", "-b",
			      (char *)backing, (char *)overlay, sizebuf, NULL};
	unlink(overlay);
	struct proc_out p;
	int r = run_qemu_img(argv, &p, err);
	if (r < 0)
		return r;
	if (p.status != 0)
		r = qemu_img_fail(&p, "create", overlay, err);
	proc_out_release(&p);
	return r;
}
