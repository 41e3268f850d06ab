/* Shared helpers: cleanup attributes, errors as values, strbuf, checked parsing, files. */
#pragma once
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)
#define _cleanup_strv_ _cleanup_(strv_freep)
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define TAKE_PTR(p)                      \
	({                               \
		__typeof__(p) _tp = (p); \
		(p) = NULL;              \
		_tp;                     \
	})
#define TAKE_FD(fd)             \
	({                      \
		int _tf = (fd); \
		(fd) = -1;      \
		_tf;            \
	})

static inline void freep(void *p) { free(*(void **)p); }
static inline void closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}
static inline void fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}

/* Allocation failure is not an error we can report meaningfully: abort, like git's xmalloc. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) _printf_(1, 2);

/* NULL-terminated string vectors. */
size_t strv_len(char *const *v);
void strv_free(char **v);
static inline void strv_freep(char ***v) { strv_free(*v); }
char **strv_push(char **v, char *take); /* appends, takes ownership of the string */
char **strv_copy(char *const *v);

/* Errors as values: functions return < 0 and fill *err. err may be NULL. */
struct hutch_error {
	int code; /* positive errno-style code, e.g. EBUSY */
	char *msg;
};
int hutch_error_set(struct hutch_error *err, int code, const char *fmt, ...) _printf_(3, 4);
/* Prefix the existing message with context: "ctx: old". Returns -code. */
int hutch_error_wrap(struct hutch_error *err, const char *fmt, ...) _printf_(2, 3);
void hutch_error_clear(struct hutch_error *err);
static inline int hutch_errno(int e) { return e > 0 ? -e : (e < 0 ? e : -EIO); }

/* Growable buffer (git strbuf): all rendering goes through it. buf is always NUL-terminated. */
struct strbuf {
	char *buf;
	size_t len;
	size_t alloc;
};
#define STRBUF_INIT        \
	{                  \
		NULL, 0, 0 \
	}
void strbuf_grow(struct strbuf *sb, size_t extra);
void strbuf_add(struct strbuf *sb, const void *data, size_t len);
void strbuf_adds(struct strbuf *sb, const char *s);
void strbuf_addch(struct strbuf *sb, char c);
void strbuf_addf(struct strbuf *sb, const char *fmt, ...) _printf_(2, 3);
void strbuf_vaddf(struct strbuf *sb, const char *fmt, va_list ap);
void strbuf_reset(struct strbuf *sb);
void strbuf_release(struct strbuf *sb);
char *strbuf_detach(struct strbuf *sb, size_t *ret_len);
const char *strbuf_str(const struct strbuf *sb); /* "" when empty */
static inline void strbuf_releasep(struct strbuf *sb) { strbuf_release(sb); }
#define _cleanup_strbuf_ _cleanup_(strbuf_releasep)

/* Checked parsing. All return 0 or -EINVAL/-ERANGE and leave *ret untouched on failure. */
int parse_ll(const char *s, long long min, long long max, long long *ret);
/* "512M", "1G", "2GiB", "1024" (bytes), "10K". K/M/G/T and KiB..TiB are powers of 1024. */
int parse_size(const char *s, uint64_t *ret);
/* "30", "30s", "5m", "2h", "1500ms" -> milliseconds. */
int parse_duration_ms(const char *s, uint64_t *ret);
/* Human-readable size, e.g. "512M", "1.5G". Returns buf. */
const char *format_size(uint64_t bytes, char *buf, size_t len);

/* Files. */
int mkdir_p(const char *path, mode_t mode);
/* tmp -> fsync -> rename -> fsync(dir). Never leaves a partial file under the final name. */
int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode, struct hutch_error *err);
/* Reads at most max bytes; a larger file is an error (-EFBIG). Result is NUL-terminated. */
int read_file(const char *path, size_t max, char **ret, size_t *ret_len, struct hutch_error *err);
/* read_file + write_file_atomic: a copy of a small file (at most max bytes). */
int copy_file_atomic(const char *src, const char *dst, size_t max, mode_t mode, struct hutch_error *err);
int rm_rf(const char *path);
/* The last non-empty line of a small file (at most 1 MiB), cut to max bytes; NULL if none. */
char *file_last_line(const char *path, size_t max);
int fd_set_cloexec(int fd, bool on);
int fd_set_nonblock(int fd, bool on);
ssize_t write_all(int fd, const void *buf, size_t len);
ssize_t read_full(int fd, void *buf, size_t len); /* until len, EOF or error */
/* sha256 of a file's content, hex into out[65]. */
int sha256_file_hex(const char *path, char out[65], struct hutch_error *err);
void sha256_hex(const void *data, size_t len, char out[65]);

/* The first executable NAME in $PATH (default /usr/local/bin:/usr/bin:/bin), then in the
 * colon-separated dirs of also (may be NULL); NULL when there is none. */
char *path_find(const char *name, const char *also);
/* ABS ("/proc/cpuinfo") under the directory named by the environment variable ENV when it is set:
 * HUTCH_PROC_ROOT and HUTCH_SYSFS_ROOT let tests stand fake /proc and /sys trees in. */
char *host_path(const char *env, const char *abs);

/* In a freshly forked child: die with the parent (PR_SET_PDEATHSIG), even if it died between fork
 * and here, and start with no signal blocked. */
void child_die_with_parent(pid_t parent);

/* This user's login name (getpwuid), or "$USER" when it has none. */
const char *user_name(void);

/* Time. */
uint64_t now_ms(void);	   /* CLOCK_MONOTONIC */
uint64_t now_real_s(void); /* CLOCK_REALTIME seconds */

/* Logging to stderr, honoring -q/-v and NO_COLOR. Libraries use it only for warnings and debug. */
enum log_level { LOG_QUIET = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };
extern int hutch_log_level;
void hlog(enum log_level lvl, const char *fmt, ...) _printf_(2, 3);
#define log_warn(...) hlog(LOG_WARN, __VA_ARGS__)
#define log_info(...) hlog(LOG_INFO, __VA_ARGS__)
#define log_debug(...) hlog(LOG_DEBUG, __VA_ARGS__)
