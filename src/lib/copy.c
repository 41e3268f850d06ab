#include "copy.h"

#include "session.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "lazylib.h" /* after <archive.h>: routes archive_*() through the lazy table */

/* The tar side runs in a forked child; what it has to say comes back over a pipe as lines, "W msg"
 * for a warning and "E msg" for the error that ends it, so that the library never prints. */
#define REPORT_MAX 50 /* lines: well under a pipe's buffer, so the child never blocks on it */

struct report {
	int fd;
	int lines;
};

static void report(struct report *rp, char kind, const char *fmt, ...) _printf_(3, 4);
static void report(struct report *rp, char kind, const char *fmt, ...)
{
	if (rp->lines >= REPORT_MAX)
		return;
	char msg[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (char *c = msg; *c; c++)
		if (*c == '\n')
			*c = ' ';
	if (++rp->lines == REPORT_MAX && kind == 'W')
		snprintf(msg, sizeof(msg), "more was skipped than is worth listing");
	dprintf(rp->fd, "%c %s\n", kind, msg);
}

/* The child's lines: warnings appended to *warnings, the error (the last E line) into *ret_error. */
static void report_collect(int fd, char ***warnings, char **ret_error)
{
	_cleanup_free_ char *text = NULL;
	struct strbuf sb = STRBUF_INIT;
	char buf[4096];
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
		if (n > 0 && sb.len < 256 * 1024)
			strbuf_add(&sb, buf, (size_t)n);
	text = strbuf_detach(&sb, NULL);
	*ret_error = NULL;
	for (char *save = NULL, *line = text ? strtok_r(text, "\n", &save) : NULL; line;
	     line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == 'E' && line[1] == ' ') {
			free(*ret_error);
			*ret_error = xstrdup(line + 2);
		} else if (line[0] == 'W' && line[1] == ' ' && warnings)
			*warnings = strv_push(*warnings, xstrdup(line + 2));
	}
}

static char *base_of(const char *p)
{
	_cleanup_free_ char *c = xstrdup(p);
	size_t n = strlen(c);
	while (n > 1 && c[n - 1] == '/')
		c[--n] = 0;
	return xstrdup(basename(c));
}

static char *dir_of(const char *p)
{
	_cleanup_free_ char *c = xstrdup(p);
	size_t n = strlen(c);
	while (n > 1 && c[n - 1] == '/')
		c[--n] = 0;
	return xstrdup(dirname(c));
}

static int guest_run(const struct store *st, const char *vm, char **argv, const char *user, int in_fd, int out_fd,
		     int *ret_status, struct hutch_error *err)
{
	struct exec_opts o = {
		.argv = argv,
		.user = user,
		.forward_stdin = in_fd >= 0,
		.in_fd = in_fd >= 0 ? in_fd : STDIN_FILENO,
		.out_fd = out_fd >= 0 ? out_fd : STDOUT_FILENO,
		.err_fd = STDERR_FILENO,
	};
	return exec_session(st, vm, &o, ret_status, err);
}

static int guest_is_dir(const struct store *st, const char *vm, const char *path, const char *user, bool *ret,
			struct hutch_error *err)
{
	char *argv[] = {"test", "-d", (char *)path, NULL};
	int status;
	int r = guest_run(st, vm, argv, user, -1, -1, &status, err);
	if (r < 0)
		return r;
	*ret = status == 0;
	return 0;
}

/* ---- host -> guest ---- */

static int add_tree(struct archive *a, const char *path, const char *name, bool recursive, struct report *rp,
		    struct hutch_error *err);

static int add_one(struct archive *a, const char *path, const char *name, const struct stat *sb, struct report *rp,
		   struct hutch_error *err)
{
	struct archive_entry *e = archive_entry_new();
	archive_entry_copy_pathname(e, name);
	archive_entry_copy_stat(e, sb);
	archive_entry_set_uid(e, 0);
	archive_entry_set_gid(e, 0);
	char target[4096];
	if (S_ISLNK(sb->st_mode)) {
		ssize_t n = readlink(path, target, sizeof(target) - 1);
		if (n < 0) {
			archive_entry_free(e);
			return hutch_error_set(err, errno, "cannot read link '%s': %s", path, strerror(errno));
		}
		target[n] = 0;
		archive_entry_copy_symlink(e, target);
	} else if (!S_ISREG(sb->st_mode) && !S_ISDIR(sb->st_mode)) {
		archive_entry_free(e);
		report(rp, 'W', "skipping '%s': not a regular file, directory or symlink", path);
		return 0;
	}
	if (archive_write_header(a, e) != ARCHIVE_OK) {
		archive_entry_free(e);
		return hutch_error_set(err, EIO, "tar: %s", archive_error_string(a));
	}
	archive_entry_free(e);
	if (S_ISREG(sb->st_mode)) {
		_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return hutch_error_set(err, errno, "cannot open '%s': %s", path, strerror(errno));
		char buf[65536];
		ssize_t n;
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			if (archive_write_data(a, buf, (size_t)n) < 0)
				return hutch_error_set(err, EIO, "tar: %s", archive_error_string(a));
		if (n < 0)
			return hutch_error_set(err, errno, "cannot read '%s': %s", path, strerror(errno));
	}
	return 0;
}

static int add_tree(struct archive *a, const char *path, const char *name, bool recursive, struct report *rp,
		    struct hutch_error *err)
{
	struct stat sb;
	/* like cp: a plain copy follows a symlink it is given; -r copies links inside trees as links */
	if ((recursive ? lstat(path, &sb) : stat(path, &sb)) < 0)
		return hutch_error_set(err, errno, "cannot stat '%s': %s", path, strerror(errno));
	if (S_ISDIR(sb.st_mode) && !recursive)
		return hutch_error_set(err, EISDIR, "'%s' is a directory (use -r)", path);
	int r = add_one(a, path, name, &sb, rp, err);
	if (r < 0 || !S_ISDIR(sb.st_mode))
		return r;
	DIR *d = opendir(path);
	if (!d)
		return hutch_error_set(err, errno, "cannot read '%s': %s", path, strerror(errno));
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		_cleanup_free_ char *sub = xasprintf("%s/%s", path, de->d_name);
		_cleanup_free_ char *subname = xasprintf("%s/%s", name, de->d_name);
		r = add_tree(a, sub, subname, true, rp, err);
		if (r < 0)
			break;
	}
	closedir(d);
	return r;
}

static int tar_writer(int fd, const char *src, const char *top, bool recursive, struct report *rp)
{
	struct archive *a = archive_write_new();
	archive_write_set_format_pax_restricted(a);
	archive_write_set_bytes_in_last_block(a, 1);
	if (archive_write_open_fd(a, fd) != ARCHIVE_OK)
		return 1;
	struct hutch_error err = {0};
	int r = add_tree(a, src, top, recursive, rp, &err);
	archive_write_close(a);
	archive_write_free(a);
	if (r < 0) {
		report(rp, 'E', "%s", err.msg);
		hutch_error_clear(&err);
		return 1;
	}
	return 0;
}

int copy_to_guest(const struct store *st, const char *vm, const char *src, const char *dst, const struct copy_opts *o,
		  struct hutch_error *err)
{
	struct stat sb;
	if (lstat(src, &sb) < 0)
		return hutch_error_set(err, errno, "cannot stat '%s': %s", src, strerror(errno));
	if (S_ISDIR(sb.st_mode) && !o->recursive)
		return hutch_error_set(err, EISDIR, "'%s' is a directory (use -r)", src);
	if (lazy_archive_load(err) < 0)
		return -1;
	bool isdir = false;
	int r = guest_is_dir(st, vm, dst, o->user, &isdir, err);
	if (r < 0)
		return r;
	/* Like cp: into an existing directory keeps the name, otherwise DST is the new name. */
	_cleanup_free_ char *gdir = isdir ? xstrdup(dst) : dir_of(dst);
	_cleanup_free_ char *top = isdir ? base_of(src) : base_of(dst);
	int p[2], rep[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return hutch_error_set(err, errno, "pipe: %s", strerror(errno));
	if (pipe2(rep, O_CLOEXEC) < 0) {
		close(p[0]);
		close(p[1]);
		return hutch_error_set(err, errno, "pipe: %s", strerror(errno));
	}
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		close(rep[0]);
		close(rep[1]);
		return hutch_error_set(err, errno, "fork: %s", strerror(errno));
	}
	if (pid == 0) {
		close(p[0]);
		close(rep[0]);
		struct report rp = {.fd = rep[1]};
		_exit(tar_writer(p[1], src, top, o->recursive, &rp));
	}
	close(p[1]);
	close(rep[1]);
	char *argv[] = {"tar", "-x", "-o", "-f", "-", "-C", gdir, NULL};
	int status = 0;
	r = guest_run(st, vm, argv, o->user, p[0], -1, &status, err);
	close(p[0]);
	_cleanup_free_ char *child_error = NULL;
	report_collect(rep[0], o->warnings, &child_error);
	close(rep[0]);
	int ws = 0;
	waitpid(pid, &ws, 0);
	if (r < 0)
		return r;
	if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
		return child_error ? hutch_error_set(err, EIO, "%s", child_error)
				   : hutch_error_set(err, EIO, "could not read '%s'", src);
	if (status != 0)
		return hutch_error_set(err, EIO, "tar in the guest failed with status %d writing into '%s'", status,
				       gdir);
	return 0;
}

/* ---- guest -> host ---- */

char *copy_map_entry(const char *untrusted_name, const char *top, const char *dest)
{
	const char *n = untrusted_name;
	while (n[0] == '.' && n[1] == '/')
		n += 2;
	if (n[0] == '/' || !*n)
		return NULL;
	size_t tl = strlen(top);
	if (strncmp(n, top, tl) != 0 || (n[tl] != 0 && n[tl] != '/'))
		return NULL;
	const char *rest = n + tl;
	/* no '..' component anywhere */
	for (const char *p = rest; *p;) {
		while (*p == '/')
			p++;
		size_t len = strcspn(p, "/");
		if (len == 2 && p[0] == '.' && p[1] == '.')
			return NULL;
		p += len;
	}
	size_t rl = strlen(rest);
	while (rl > 0 && rest[rl - 1] == '/')
		rl--;
	return xasprintf("%s%.*s", dest, (int)rl, rest);
}

static int tar_reader(int fd, const char *top, const char *dest, bool recursive, struct report *rp)
{
	struct archive *a = archive_read_new();
	archive_read_support_format_tar(a);
	archive_read_support_format_gnutar(a);
	struct archive *w = archive_write_disk_new();
	archive_write_disk_set_options(w, ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME |
						  ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
						  ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS | ARCHIVE_EXTRACT_UNLINK);
	int rc = 0;
	if (archive_read_open_fd(a, fd, 65536) != ARCHIVE_OK) {
		report(rp, 'E', "%s", archive_error_string(a));
		rc = 1;
		goto out;
	}
	struct archive_entry *e;
	bool first = true;
	int r;
	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		const char *untrusted_name = archive_entry_pathname(e);
		_cleanup_free_ char *path = untrusted_name ? copy_map_entry(untrusted_name, top, dest) : NULL;
		mode_t type = archive_entry_filetype(e);
		if (!path) {
			report(rp, 'E', "refusing entry outside '%s' sent by the guest", top);
			rc = 1;
			break;
		}
		if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK) {
			report(rp, 'W', "skipping special file '%s'", path);
			continue;
		}
		if (archive_entry_hardlink(e)) {
			report(rp, 'W', "skipping hard link '%s'", path);
			continue;
		}
		if (!recursive && type == AE_IFLNK) {
			/* we asked for the file (tar -h); a guest that sends a link anyway is refused */
			report(rp, 'E', "the guest sent a symlink for '%s'; refusing", top);
			rc = 1;
			break;
		}
		if (first && type == AE_IFDIR && !recursive) {
			report(rp, 'E', "'%s' is a directory (use -r)", top);
			rc = 1;
			break;
		}
		first = false;
		archive_entry_copy_pathname(e, path);
		archive_entry_set_uid(e, getuid());
		archive_entry_set_gid(e, getgid());
		if (archive_write_header(w, e) != ARCHIVE_OK) {
			report(rp, 'E', "%s: %s", path, archive_error_string(w));
			rc = 1;
			break;
		}
		const void *buf;
		size_t len;
		la_int64_t off;
		while ((r = archive_read_data_block(a, &buf, &len, &off)) == ARCHIVE_OK)
			if (archive_write_data_block(w, buf, len, off) != ARCHIVE_OK)
				break;
		archive_write_finish_entry(w);
	}
	if (rc == 0 && r != ARCHIVE_EOF) {
		report(rp, 'E', "%s", archive_error_string(a));
		rc = 1;
	}
	if (rc == 0 && first) {
		report(rp, 'E', "nothing received");
		rc = 1;
	}
out:
	/* drain so the guest side never blocks on a full pipe */
	char sink[65536];
	while (read(fd, sink, sizeof(sink)) > 0)
		;
	archive_read_free(a);
	archive_write_free(w);
	return rc;
}

int copy_from_guest(const struct store *st, const char *vm, const char *src, const char *dst, const struct copy_opts *o,
		    struct hutch_error *err)
{
	struct stat sb;
	bool into = stat(dst, &sb) == 0 && S_ISDIR(sb.st_mode);
	_cleanup_free_ char *top = base_of(src);
	_cleanup_free_ char *gdir = dir_of(src);
	if (!strcmp(top, "/") || !strcmp(top, ".") || !strcmp(top, ".."))
		return hutch_error_set(err, EINVAL, "cannot copy '%s': name a file or directory", src);
	_cleanup_free_ char *dest = into ? xasprintf("%s/%s", dst, top) : xstrdup(dst);
	if (lazy_archive_load(err) < 0)
		return -1;
	int p[2], rep[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return hutch_error_set(err, errno, "pipe: %s", strerror(errno));
	if (pipe2(rep, O_CLOEXEC) < 0) {
		close(p[0]);
		close(p[1]);
		return hutch_error_set(err, errno, "pipe: %s", strerror(errno));
	}
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		close(rep[0]);
		close(rep[1]);
		return hutch_error_set(err, errno, "fork: %s", strerror(errno));
	}
	if (pid == 0) {
		/* Extract relative to DEST's parent: absolute names stay forbidden for guest data. */
		close(p[1]);
		close(rep[0]);
		struct report rp = {.fd = rep[1]};
		_cleanup_free_ char *ddir = dir_of(dest), *dbase = base_of(dest);
		if (chdir(ddir) < 0) {
			report(&rp, 'E', "cannot enter '%s': %s", ddir, strerror(errno));
			_exit(1);
		}
		_exit(tar_reader(p[0], top, dbase, o->recursive, &rp));
	}
	close(p[0]);
	close(rep[1]);
	/* -h for a plain copy: the file a symlink names, not a link that would point into the host */
	char *argv[] = {"tar", "-c", o->recursive ? "-f" : "-hf", "-", "-C", gdir, top, NULL};
	int status = 0;
	int r = guest_run(st, vm, argv, o->user, -1, p[1], &status, err);
	close(p[1]);
	_cleanup_free_ char *child_error = NULL;
	report_collect(rep[0], o->warnings, &child_error);
	close(rep[0]);
	int ws = 0;
	waitpid(pid, &ws, 0);
	if (r < 0)
		return r;
	/* what the host side refused says more than the guest tar's status (it saw its reader go) */
	if ((!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) && child_error)
		return hutch_error_set(err, EIO, "%s", child_error);
	if (status != 0)
		return hutch_error_set(err, EIO, "tar in the guest failed with status %d reading '%s'", status, src);
	if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
		return hutch_error_set(err, EIO, "could not write '%s'", dst);
	return 0;
}
