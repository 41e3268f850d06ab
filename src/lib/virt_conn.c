#include "virt_conn.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>

int virt_state_write(const char *path, const char *text)
{
	_cleanup_free_ char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	ssize_t n = write_all(fd, text, strlen(text));
	close(fd);
	if (n < 0 || rename(tmp, path) < 0) {
		unlink(tmp);
		return -EIO;
	}
	return 0;
}

#ifdef HAVE_LIBVIRT

#include "config.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "lazyvirt.h"

int virt_uri_for(const struct store *st, const struct vm_spec *spec, char **ret, struct hutch_error *err)
{
	if (spec->uri && *spec->uri) {
		*ret = xstrdup(spec->uri);
		return 0;
	}
	struct hutch_config c = {0};
	int r = config_load(st, &c, err);
	if (r < 0)
		return r;
	*ret = xstrdup(c.libvirt_uri && *c.libvirt_uri ? c.libvirt_uri : VIRT_DEFAULT_URI);
	config_release(&c);
	return 0;
}

/* libvirt prints every error to stderr unless told otherwise; the library never prints. */
static void quiet(void *userdata, virErrorPtr e)
{
	(void)userdata;
	(void)e;
}

static void *event_loop(void *arg)
{
	for (;;)
		if (virEventRunDefaultImpl() < 0)
			break;
	return arg;
}

static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static bool initialised;

static int virt_init(struct hutch_error *err)
{
	int r = lazy_virt_load(err);
	if (r < 0)
		return hutch_error_wrap(err, "the libvirt backend needs Debian's %s", VIRT_PACKAGES);
	pthread_mutex_lock(&init_lock);
	if (!initialised) {
		virSetErrorFunc(NULL, quiet);
		virEventRegisterDefaultImpl();
		pthread_t t;
		pthread_attr_t a;
		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &a, event_loop, NULL) == 0)
			initialised = true;
		pthread_attr_destroy(&a);
	}
	pthread_mutex_unlock(&init_lock);
	if (!initialised)
		return hutch_error_set(err, EAGAIN, "cannot start libvirt's event loop thread");
	return 0;
}

const char *virt_last_error(const char *fallback)
{
	const char *m = virGetLastErrorMessage();
	return m && *m && strcmp(m, "no error") ? m : fallback;
}

/* The open runs on its own thread so that a daemon that never answers costs timeout_ms, not a hang. */
struct open_job {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	char *uri;
	virConnectPtr conn;
	char *error;
	bool done, abandoned;
};

static void job_free(struct open_job *j)
{
	if (j->conn)
		virConnectClose(j->conn);
	free(j->uri);
	free(j->error);
	pthread_mutex_destroy(&j->lock);
	pthread_cond_destroy(&j->cond);
	free(j);
}

static void *open_thread(void *arg)
{
	struct open_job *j = arg;
	virConnectPtr c = virConnectOpen(j->uri);
	char *e = c ? NULL : xstrdup(virt_last_error("unknown error"));
	/* 5 s between keepalives, 3 unanswered: a lost connection is noticed within ~20 s */
	if (c)
		virConnectSetKeepAlive(c, 5, 3);
	pthread_mutex_lock(&j->lock);
	j->conn = c;
	j->error = e;
	j->done = true;
	bool abandoned = j->abandoned;
	pthread_cond_signal(&j->cond);
	pthread_mutex_unlock(&j->lock);
	if (abandoned)
		job_free(j);
	return NULL;
}

static char *session_hint(const char *uri)
{
	if (!strstr(uri, ":///session"))
		return NULL;
	const char *rt = getenv("XDG_RUNTIME_DIR");
	_cleanup_free_ char *home_rt = NULL;
	if (!rt || !*rt) {
		const char *home = getenv("HOME");
		home_rt = xasprintf("%s/.cache", home ? home : "");
		rt = home_rt;
	}
	static const char *const socks[] = {"virtqemud-sock", "libvirt-sock"};
	struct strbuf sb = STRBUF_INIT;
	strbuf_adds(&sb, "tried ");
	for (size_t i = 0; i < ARRAY_SIZE(socks); i++) {
		_cleanup_free_ char *p = xasprintf("%s/libvirt/%s", rt, socks[i]);
		strbuf_addf(&sb, "%s%s (%s), ", i ? "then " : "", p, access(p, F_OK) == 0 ? "present" : "absent");
	}
	strbuf_adds(&sb, "then autospawning the session daemon");
	return strbuf_detach(&sb, NULL);
}

/* One connection per URI for the life of the process (list asks about every VM): a URI that
 * failed or timed out is not tried again, so one dead host costs its timeout once. */
struct cached {
	char *uri;
	virConnectPtr conn;
	int code;
	char *error;
};
static struct cached cache[8];
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static struct cached *cache_find(const char *uri)
{
	for (size_t i = 0; i < ARRAY_SIZE(cache); i++)
		if (cache[i].uri && !strcmp(cache[i].uri, uri))
			return &cache[i];
	return NULL;
}

static void cache_put(const char *uri, virConnectPtr conn, int code, const char *error)
{
	pthread_mutex_lock(&cache_lock);
	struct cached *c = cache_find(uri);
	for (size_t i = 0; !c && i < ARRAY_SIZE(cache); i++)
		if (!cache[i].uri)
			c = &cache[i];
	if (c) {
		if (c->conn)
			virConnectClose(c->conn);
		free(c->uri);
		free(c->error);
		*c = (struct cached){
			.uri = xstrdup(uri), .conn = conn, .code = code, .error = error ? xstrdup(error) : NULL};
		if (conn)
			virConnectRef(conn);
	}
	pthread_mutex_unlock(&cache_lock);
}

static int open_uncached(const char *uri, uint64_t timeout_ms, void **ret, struct hutch_error *err);

void virt_forget(const char *uri)
{
	pthread_mutex_lock(&cache_lock);
	struct cached *c = cache_find(uri);
	if (c) {
		if (c->conn)
			virConnectClose(c->conn);
		free(c->uri);
		free(c->error);
		memset(c, 0, sizeof(*c));
	}
	pthread_mutex_unlock(&cache_lock);
}

int virt_open(const char *uri, uint64_t timeout_ms, void **ret, struct hutch_error *err)
{
	int r = virt_init(err);
	if (r < 0)
		return r;
	pthread_mutex_lock(&cache_lock);
	struct cached *c = cache_find(uri);
	if (c && c->conn && virConnectIsAlive(c->conn) == 1) {
		virConnectRef(c->conn);
		*ret = c->conn;
		pthread_mutex_unlock(&cache_lock);
		return 0;
	}
	if (c && !c->conn) {
		r = hutch_error_set(err, c->code, "%s", c->error);
		pthread_mutex_unlock(&cache_lock);
		return r;
	}
	pthread_mutex_unlock(&cache_lock);
	r = open_uncached(uri, timeout_ms, ret, err);
	cache_put(uri, r == 0 ? *ret : NULL, -r, r == 0 ? NULL : err && err->msg ? err->msg : "cannot connect");
	return r;
}

static int open_uncached(const char *uri, uint64_t timeout_ms, void **ret, struct hutch_error *err)
{
	int r;
	struct open_job *j = xcalloc(1, sizeof(*j));
	pthread_mutex_init(&j->lock, NULL);
	pthread_cond_init(&j->cond, NULL);
	j->uri = xstrdup(uri);
	pthread_t t;
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &a, open_thread, j) != 0) {
		pthread_attr_destroy(&a);
		job_free(j);
		return hutch_error_set(err, EAGAIN, "cannot start a thread to connect to '%s'", uri);
	}
	pthread_attr_destroy(&a);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(timeout_ms / 1000);
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&j->lock);
	while (!j->done)
		if (pthread_cond_timedwait(&j->cond, &j->lock, &ts) == ETIMEDOUT)
			break;
	if (!j->done) {
		j->abandoned = true; /* the thread frees it when the open finally returns */
		pthread_mutex_unlock(&j->lock);
		return hutch_error_set(err, ETIMEDOUT, "libvirt at '%s' did not answer within %llu s", uri,
				       (unsigned long long)(timeout_ms / 1000));
	}
	pthread_mutex_unlock(&j->lock);
	if (!j->conn) {
		_cleanup_free_ char *hint = session_hint(uri);
		if (hint)
			r = hutch_error_set(err, ECONNREFUSED, "cannot connect to libvirt at '%s' (%s): %s", uri, hint,
					    j->error);
		else
			r = hutch_error_set(err, ECONNREFUSED, "cannot connect to libvirt at '%s': %s", uri, j->error);
		job_free(j);
		return r;
	}
	*ret = TAKE_PTR(j->conn);
	job_free(j);
	return 0;
}

void virt_close(void *conn)
{
	if (conn)
		virConnectClose(conn);
}
#endif
