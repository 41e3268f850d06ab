#include "util.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <openssl/evp.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>

#include "lazylib.h" /* after <openssl/evp.h>: routes EVP_*() through the lazy table */

int hutch_log_level = LOG_WARN;

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		abort();
	return p;
}

void *xcalloc(size_t n, size_t m)
{
	void *p = calloc(n ? n : 1, m ? m : 1);
	if (!p)
		abort();
	return p;
}

void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		abort();
	return p;
}

char *xstrdup(const char *s)
{
	char *r = strdup(s);
	if (!r)
		abort();
	return r;
}

char *xstrndup(const char *s, size_t n)
{
	char *r = strndup(s, n);
	if (!r)
		abort();
	return r;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *r;
	va_start(ap, fmt);
	if (vasprintf(&r, fmt, ap) < 0)
		abort();
	va_end(ap);
	return r;
}

size_t strv_len(char *const *v)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	return n;
}

void strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

char **strv_push(char **v, char *take)
{
	size_t n = strv_len(v);
	v = xrealloc(v, (n + 2) * sizeof(char *));
	v[n] = take;
	v[n + 1] = NULL;
	return v;
}

char **strv_copy(char *const *v)
{
	char **r = xcalloc(strv_len(v) + 1, sizeof(char *));
	for (size_t i = 0; v && v[i]; i++)
		r[i] = xstrdup(v[i]);
	return r;
}

int hutch_error_set(struct hutch_error *err, int code, const char *fmt, ...)
{
	if (code < 0)
		code = -code;
	if (code == 0)
		code = EIO;
	if (err) {
		va_list ap;
		free(err->msg);
		err->code = code;
		va_start(ap, fmt);
		if (vasprintf(&err->msg, fmt, ap) < 0)
			abort();
		va_end(ap);
	}
	return -code;
}

int hutch_error_wrap(struct hutch_error *err, const char *fmt, ...)
{
	if (!err)
		return -EIO;
	va_list ap;
	char *ctx;
	va_start(ap, fmt);
	if (vasprintf(&ctx, fmt, ap) < 0)
		abort();
	va_end(ap);
	char *m = err->msg ? xasprintf("%s: %s", ctx, err->msg) : ctx;
	if (m != ctx)
		free(ctx);
	free(err->msg);
	err->msg = m;
	if (err->code == 0)
		err->code = EIO;
	return -err->code;
}

void hutch_error_clear(struct hutch_error *err)
{
	if (!err)
		return;
	free(err->msg);
	err->msg = NULL;
	err->code = 0;
}

void strbuf_grow(struct strbuf *sb, size_t extra)
{
	if (sb->len + extra + 1 <= sb->alloc)
		return;
	size_t want = sb->alloc ? sb->alloc : 64;
	while (want < sb->len + extra + 1)
		want *= 2;
	sb->buf = xrealloc(sb->buf, want);
	sb->alloc = want;
}

void strbuf_add(struct strbuf *sb, const void *data, size_t len)
{
	strbuf_grow(sb, len);
	if (len)
		memcpy(sb->buf + sb->len, data, len);
	sb->len += len;
	sb->buf[sb->len] = 0;
}

void strbuf_adds(struct strbuf *sb, const char *s) { strbuf_add(sb, s, strlen(s)); }

void strbuf_addch(struct strbuf *sb, char c) { strbuf_add(sb, &c, 1); }

void strbuf_vaddf(struct strbuf *sb, const char *fmt, va_list ap)
{
	/* Measure into a small stack buffer, not NULL: gcc's UBSan build warns on vsnprintf(NULL, 0, ...)
	 * ("null format string"), and short strings then need no second pass. */
	char small[256];
	va_list cp;
	va_copy(cp, ap);
	int n = vsnprintf(small, sizeof(small), fmt, cp);
	va_end(cp);
	if (n >= 0 && (size_t)n < sizeof(small)) {
		strbuf_add(sb, small, (size_t)n);
		return;
	}
	if (n < 0)
		abort();
	strbuf_grow(sb, (size_t)n);
	vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
	sb->len += (size_t)n;
}

void strbuf_addf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	strbuf_vaddf(sb, fmt, ap);
	va_end(ap);
}

void strbuf_reset(struct strbuf *sb)
{
	sb->len = 0;
	if (sb->buf)
		sb->buf[0] = 0;
}

void strbuf_release(struct strbuf *sb)
{
	free(sb->buf);
	sb->buf = NULL;
	sb->len = sb->alloc = 0;
}

char *strbuf_detach(struct strbuf *sb, size_t *ret_len)
{
	char *r = sb->buf ? sb->buf : xstrdup("");
	if (ret_len)
		*ret_len = sb->len;
	sb->buf = NULL;
	sb->len = sb->alloc = 0;
	return r;
}

const char *strbuf_str(const struct strbuf *sb) { return sb->buf ? sb->buf : ""; }

int parse_ll(const char *s, long long min, long long max, long long *ret)
{
	if (!s || !*s || isspace((unsigned char)*s))
		return -EINVAL;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	if (*end || end == s)
		return -EINVAL;
	if (v < min || v > max)
		return -ERANGE;
	*ret = v;
	return 0;
}

int parse_size(const char *s, uint64_t *ret)
{
	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	uint64_t mult = 1;
	static const struct {
		const char *suffix;
		unsigned shift;
	} units[] = {
		{"", 0},   {"B", 0},	{"K", 10},  {"KiB", 10}, {"KB", 10},  {"M", 20},  {"MiB", 20}, {"MB", 20},
		{"G", 30}, {"GiB", 30}, {"GB", 30}, {"T", 40},	 {"TiB", 40}, {"TB", 40}, {"k", 10},
	};
	size_t i;
	for (i = 0; i < ARRAY_SIZE(units); i++)
		if (strcmp(end, units[i].suffix) == 0)
			break;
	if (i == ARRAY_SIZE(units))
		return -EINVAL;
	mult = (uint64_t)1 << units[i].shift;
	if (v > UINT64_MAX / mult)
		return -ERANGE;
	*ret = (uint64_t)v * mult;
	return 0;
}

int parse_duration_ms(const char *s, uint64_t *ret)
{
	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	uint64_t mult;
	if (!*end || !strcmp(end, "s"))
		mult = 1000;
	else if (!strcmp(end, "ms"))
		mult = 1;
	else if (!strcmp(end, "m") || !strcmp(end, "min"))
		mult = 60000;
	else if (!strcmp(end, "h"))
		mult = 3600000;
	else
		return -EINVAL;
	if (v > UINT64_MAX / mult)
		return -ERANGE;
	*ret = (uint64_t)v * mult;
	return 0;
}

const char *format_size(uint64_t b, char *buf, size_t len)
{
	static const char units[] = "BKMGTP";
	unsigned u = 0;
	uint64_t v = b;
	while (v >= 1024 && v % 1024 == 0 && u < 5) {
		v /= 1024;
		u++;
	}
	if (v < 10240 || u == 5) {
		if (u == 0)
			snprintf(buf, len, "%llu", (unsigned long long)v);
		else
			snprintf(buf, len, "%llu%c", (unsigned long long)v, units[u]);
		return buf;
	}
	double d = (double)b;
	u = 0;
	while (d >= 1024 && u < 5) {
		d /= 1024;
		u++;
	}
	snprintf(buf, len, "%.1f%c", d, units[u]);
	return buf;
}

int mkdir_p(const char *path, mode_t mode)
{
	_cleanup_free_ char *p = xstrdup(path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int fsync_parent(const char *path)
{
	_cleanup_free_ char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	if (!slash)
		return 0;
	if (slash == dir)
		slash[1] = 0;
	else
		*slash = 0;
	_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return fsync(fd) < 0 ? -errno : 0;
}

/* Writers killed between create and rename leave PATH.tmp.PID behind; sweep those whose writer is
 * gone. A live (or reused) pid keeps its file: it is never read as state either way. */
static void sweep_stale_tmp(const char *path)
{
	_cleanup_free_ char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	if (!slash)
		return;
	*slash = 0;
	_cleanup_free_ char *prefix = xasprintf("%s.tmp.", slash + 1);
	size_t pl = strlen(prefix);
	DIR *d = opendir(*dir ? dir : "/");
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		long long pid;
		if (strncmp(de->d_name, prefix, pl) != 0 || parse_ll(de->d_name + pl, 1, INT_MAX, &pid) < 0)
			continue;
		if (kill((pid_t)pid, 0) < 0 && errno == ESRCH) {
			_cleanup_free_ char *p = xasprintf("%s/%s", dir, de->d_name);
			unlink(p);
		}
	}
	closedir(d);
}

int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode, struct hutch_error *err)
{
	sweep_stale_tmp(path);
	_cleanup_free_ char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
	/* A leftover tmp from a killed writer must not lend us its mode or a symlink. */
	unlink(tmp);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return hutch_error_set(err, errno, "cannot create '%s': %s", tmp, strerror(errno));
	int r = 0;
	if (write_all(fd, data, len) < 0)
		r = -errno;
	else if (fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		return hutch_error_set(err, -r, "cannot write '%s': %s", path, strerror(-r));
	}
	fsync_parent(path);
	return 0;
}

int read_file(const char *path, size_t max, char **ret, size_t *ret_len, struct hutch_error *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return hutch_error_set(err, errno, "cannot open '%s': %s", path, strerror(errno));
	struct strbuf sb = STRBUF_INIT;
	char chunk[65536];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			strbuf_release(&sb);
			return hutch_error_set(err, e, "cannot read '%s': %s", path, strerror(e));
		}
		if (n == 0)
			break;
		if (sb.len + (size_t)n > max) {
			strbuf_release(&sb);
			return hutch_error_set(err, EFBIG, "'%s' is larger than the limit of %zu bytes", path, max);
		}
		strbuf_add(&sb, chunk, (size_t)n);
	}
	if (!sb.buf)
		strbuf_grow(&sb, 0), sb.buf[0] = 0;
	*ret = strbuf_detach(&sb, ret_len);
	return 0;
}

int copy_file_atomic(const char *src, const char *dst, size_t max, mode_t mode, struct hutch_error *err)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	int r = read_file(src, max, &buf, &len, err);
	return r < 0 ? r : write_file_atomic(dst, buf, len, mode, err);
}

int rm_rf(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
	/* a tree we made may hold a directory without write or search permission for us (a 0555 dir
	 * unpacked from an image): ours to remove, so give ourselves the right first */
	if ((st.st_mode & 0700) != 0700)
		chmod(path, (st.st_mode & 07777) | 0700);
	DIR *d = opendir(path);
	if (!d)
		return -errno;
	struct dirent *de;
	int r = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		_cleanup_free_ char *sub = xasprintf("%s/%s", path, de->d_name);
		int q = rm_rf(sub);
		if (q < 0 && r == 0)
			r = q;
	}
	closedir(d);
	if (rmdir(path) < 0 && errno != ENOENT && r == 0)
		r = -errno;
	return r;
}

int fd_set_cloexec(int fd, bool on)
{
	int f = fcntl(fd, F_GETFD);
	if (f < 0)
		return -errno;
	f = on ? (f | FD_CLOEXEC) : (f & ~FD_CLOEXEC);
	return fcntl(fd, F_SETFD, f) < 0 ? -errno : 0;
}

int fd_set_nonblock(int fd, bool on)
{
	int f = fcntl(fd, F_GETFL);
	if (f < 0)
		return -errno;
	f = on ? (f | O_NONBLOCK) : (f & ~O_NONBLOCK);
	return fcntl(fd, F_SETFL, f) < 0 ? -errno : 0;
}

ssize_t write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	size_t left = len;
	while (left) {
		ssize_t n = write(fd, p, left);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		left -= (size_t)n;
	}
	return (ssize_t)len;
}

ssize_t read_full(int fd, void *buf, size_t len)
{
	char *p = buf;
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, p + got, len - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

static void hex_encode(const unsigned char *d, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[d[i] >> 4];
		out[2 * i + 1] = hx[d[i] & 15];
	}
	out[2 * n] = 0;
}

void sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL))
		abort();
	hex_encode(md, 32, out);
}

int sha256_file_hex(const char *path, char out[65], struct hutch_error *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return hutch_error_set(err, errno, "cannot open '%s': %s", path, strerror(errno));
	if (lazy_crypto_load(err) < 0)
		return -1;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL))
		abort();
	char buf[65536];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			EVP_MD_CTX_free(ctx);
			return hutch_error_set(err, e, "cannot read '%s': %s", path, strerror(e));
		}
		if (n == 0)
			break;
		EVP_DigestUpdate(ctx, buf, (size_t)n);
	}
	unsigned char md[32];
	unsigned int mdlen = 0;
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	EVP_MD_CTX_free(ctx);
	hex_encode(md, 32, out);
	return 0;
}

uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t now_real_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec;
}

void hlog(enum log_level lvl, const char *fmt, ...)
{
	if ((int)lvl > hutch_log_level)
		return;
	static int color = -1;
	if (color < 0)
		color = isatty(STDERR_FILENO) && !getenv("NO_COLOR");
	const char *tag = lvl == LOG_WARN ? "warning: " : "";
	if (color && lvl == LOG_WARN)
		fputs("\033[33m", stderr);
	fprintf(stderr, "hutch: %s", tag);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (color && lvl == LOG_WARN)
		fputs("\033[0m", stderr);
	fputc('\n', stderr);
}

char *file_last_line(const char *path, size_t max)
{
	char *buf = NULL;
	size_t len;
	if (read_file(path, 1 << 20, &buf, &len, NULL) < 0)
		return NULL;
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		buf[--len] = 0;
	char *nl = strrchr(buf, '\n');
	char *line = len ? xstrndup(nl ? nl + 1 : buf, max) : NULL;
	free(buf);
	return line;
}

const char *user_name(void)
{
	const struct passwd *pw = getpwuid(getuid());
	return pw && pw->pw_name ? pw->pw_name : "$USER";
}

char *path_find(const char *name, const char *also)
{
	const char *path = getenv("PATH");
	_cleanup_free_ char *dirs = xasprintf("%s%s%s", path && *path ? path : "/usr/local/bin:/usr/bin:/bin",
					      also ? ":" : "", also ? also : "");
	for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		char *p = xasprintf("%s/%s", d, name);
		if (access(p, X_OK) == 0)
			return p;
		free(p);
	}
	return NULL;
}

char *host_path(const char *env, const char *abs)
{
	const char *root = getenv(env);
	return xasprintf("%s%s", root && *root ? root : "", abs);
}

void child_die_with_parent(pid_t parent)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}
