/* The libvirt backend's supervisor (virt_watch.h): one process per running libvirt VM, holding its
 * run lock, applying auto_shutdown as the qemu backend's monitor does. Sessions tell it that they
 * are there over watch.sock (one JSON line, then the connection stays open for the session's life);
 * libvirt's lifecycle events tell it when the domain is gone, and then it exits, freeing the lock. */
#include "virt_watch.h"

#include "unixsock.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>

#define WATCH_REPLY_MAX 4096

static int send_line(int fd, json_object *o)
{
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	_cleanup_free_ char *line = xasprintf("%s\n", s);
	return write_all(fd, line, strlen(line)) < 0 ? -errno : 0;
}

static int watch_connect(const struct store *st, const char *name)
{
	if (!store_name_valid(name))
		return -EINVAL;
	_cleanup_free_ char *path = store_run_file(st, name, VIRT_WATCH_SOCK);
	struct hutch_error e = {0};
	int fd = unix_connect(path, &e);
	hutch_error_clear(&e);
	return fd;
}

int virt_watch_register(const struct store *st, const char *name, bool app, bool run)
{
	int fd = watch_connect(st, name);
	if (fd < 0)
		return -1;
	json_object *o = json_object_new_object();
	json_object_object_add(o, "op", json_object_new_string("session"));
	json_object_object_add(o, "app", json_object_new_boolean(app));
	json_object_object_add(o, "run", json_object_new_boolean(run));
	int r = send_line(fd, o);
	json_object_put(o);
	if (r < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void get_str(json_object *o, const char *key, char *buf, size_t len)
{
	json_object *v;
	if (json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
		snprintf(buf, len, "%s", json_object_get_string(v));
}

int virt_watch_status(const struct store *st, const char *name, struct virt_watch_status *ret)
{
	memset(ret, 0, sizeof(*ret));
	_cleanup_close_ int fd = watch_connect(st, name);
	if (fd < 0)
		return -ENOTCONN;
	json_object *q = json_object_new_object();
	json_object_object_add(q, "op", json_object_new_string("status"));
	int r = send_line(fd, q);
	json_object_put(q);
	if (r < 0)
		return -ENOTCONN;
	char buf[WATCH_REPLY_MAX] = "";
	size_t n = 0;
	uint64_t deadline = now_ms() + 3000; /* list stays bounded when the supervisor is busy stopping */
	while (n + 1 < sizeof(buf) && !memchr(buf, '\n', n)) {
		uint64_t t = now_ms();
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (t >= deadline || poll(&p, 1, (int)(deadline - t)) <= 0)
			return -ETIMEDOUT;
		ssize_t k = read(fd, buf + n, sizeof(buf) - 1 - n);
		if (k <= 0)
			return -ENOTCONN;
		n += (size_t)k;
	}
	buf[n] = 0;
	json_object *o = json_tokener_parse(buf);
	if (!o)
		return -EPROTO;
	json_object *v;
	ret->kvm = json_object_object_get_ex(o, "kvm", &v) && json_object_get_boolean(v);
	snprintf(ret->agent, sizeof(ret->agent), "unknown");
	get_str(o, "agent", ret->agent, sizeof(ret->agent));
	get_str(o, "agent_why", ret->agent_why, sizeof(ret->agent_why));
	if (json_object_object_get_ex(o, "agent_since", &v))
		ret->agent_since = json_object_get_int64(v);
	if (json_object_object_get_ex(o, "sessions", &v))
		ret->sessions = json_object_get_int(v);
	json_object_put(o);
	return 0;
}

#ifdef HAVE_LIBVIRT
#include "backend_libvirt.h"
#include "client.h"
#include "domain_xml.h"
#include "proto.h"
#include "virt_channel.h"
#include "virt_conn.h"
#include "vmops.h"

#include <libvirt/libvirt.h>

#include "lazyvirt.h"

int virt_watch_spawn(struct vm *vm, int lock_fd, bool ephemeral, const char *agent, bool kvm, struct hutch_error *err)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return hutch_error_set(err, errno, "cannot find the hutch binary: %s", strerror(errno));
	self[n] = 0;
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return hutch_error_set(err, errno, "pipe: %s", strerror(errno));
	_cleanup_free_ char *logp = store_vm_file(vm->store, vm->name, "libvirt-watch.log");
	char lockfd_s[16], notify_s[16], flags[8];
	snprintf(lockfd_s, sizeof(lockfd_s), "%d", lock_fd);
	snprintf(notify_s, sizeof(notify_s), "%d", p[1]);
	snprintf(flags, sizeof(flags), "%c%c%c", ephemeral ? 'e' : '-', agent[0], kvm ? 'k' : '-');
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		return hutch_error_set(err, e, "fork: %s", strerror(e));
	}
	if (pid == 0) {
		/* Daemonize as the monitor does: new session, a grandchild reparented to init. */
		setsid();
		pid_t g = fork();
		if (g != 0)
			_exit(g < 0 ? 1 : 0);
		int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
		int logfd = open(logp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		dup2(nul, 0);
		dup2(nul, 1);
		dup2(logfd >= 0 ? logfd : nul, 2);
		fd_set_cloexec(lock_fd, false);
		fd_set_cloexec(p[1], false);
		char *argv[] = {self, "__libvirt-watch", vm->name, lockfd_s, notify_s, flags, NULL};
		execv(self, argv);
		_exit(127);
	}
	close(p[1]);
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	/* its word that it listens, so that the session right after start is counted */
	char c = 0;
	struct pollfd pf = {.fd = p[0], .events = POLLIN};
	int r = poll(&pf, 1, 15000) > 0 && read(p[0], &c, 1) == 1 && c == 'k' ? 0 : -1;
	close(p[0]);
	if (r < 0)
		return hutch_error_set(err, EIO, "the libvirt supervisor did not start (see %s)", logp);
	return 0;
}

#define WATCH_MAX_CLIENTS 64
#define WATCH_CHECK_MS 2000	 /* the domain's state, besides its events */
#define WATCH_RECONNECT_MS 5000	 /* a lost connection is opened again this often */
#define WATCH_PROBE_MS 10000	 /* the agent's HELLO and STAT answer, before an idle stop */
#define WATCH_STOP_TIMEOUT 20000 /* as the monitor's policy stops */
#define WATCH_REVERT_MS 60000	 /* a snapshot restore's new QEMU, under TCG and load */

struct wclient {
	int fd;
	bool registered, session, app, run;
	char buf[512];
	size_t len;
};

struct watch {
	struct store *st;
	struct vm vm;
	char *uri;
	virConnectPtr conn;
	virDomainPtr dom;
	int cb_id;
	int ev[2]; /* libvirt's event thread writes a byte for each lifecycle event */
	int listen_fd;
	bool ephemeral, kvm, gone, stopping;
	struct wclient *cl[WATCH_MAX_CLIENTS];
	int sessions, apps_live;
	uint64_t last_activity, last_check, last_reconnect, off_since;
	char agent[32];
	int64_t agent_since;
	char agent_why[160];
};

static void wlog(const char *fmt, ...) _printf_(1, 2);
static void wlog(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%llu ", (unsigned long long)now_real_s());
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void agent_set(struct watch *w, const char *state, const char *why)
{
	if (strcmp(w->agent, state)) {
		w->agent_since = (int64_t)now_real_s();
		wlog("agent: %s (%s)", state, why);
	}
	snprintf(w->agent, sizeof(w->agent), "%s", state);
	snprintf(w->agent_why, sizeof(w->agent_why), "%s", why);
}

static int on_lifecycle(virConnectPtr c, virDomainPtr d, int event, int detail, void *opaque)
{
	(void)c;
	(void)d;
	(void)event;
	(void)detail;
	struct watch *w = opaque;
	char b = 1;
	if (write(w->ev[1], &b, 1) < 0) {
		/* the pipe is full: a wake-up is pending anyway */
	}
	return 0;
}

static void conn_drop(struct watch *w)
{
	if (w->conn && w->cb_id >= 0)
		virConnectDomainEventDeregisterAny(w->conn, w->cb_id);
	w->cb_id = -1;
	if (w->dom)
		virDomainFree(w->dom);
	w->dom = NULL;
	if (w->conn)
		virt_close(w->conn);
	w->conn = NULL;
}

/* (Re)open the connection and find the domain; false while libvirt cannot be reached. */
static bool conn_ensure(struct watch *w)
{
	if (w->conn && virConnectIsAlive(w->conn) == 1)
		return true;
	uint64_t t = now_ms();
	if (w->last_reconnect && t - w->last_reconnect < WATCH_RECONNECT_MS)
		return false;
	w->last_reconnect = t;
	if (w->conn) {
		wlog("the connection to %s was lost; opening it again", w->uri);
		conn_drop(w);
		virt_forget(w->uri);
	}
	struct hutch_error e = {0};
	void *conn = NULL;
	if (virt_open(w->uri, VIRT_CONNECT_TIMEOUT_MS, &conn, &e) < 0) {
		wlog("cannot connect: %s", e.msg);
		hutch_error_clear(&e);
		virt_forget(w->uri);
		return false;
	}
	w->conn = conn;
	_cleanup_free_ char *domain = domain_xml_name(w->vm.name);
	w->dom = virDomainLookupByName(w->conn, domain);
	if (!w->dom) {
		wlog("the domain '%s' is gone", domain);
		w->gone = true;
		return false;
	}
	w->cb_id = virConnectDomainEventRegisterAny(w->conn, w->dom, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
						    VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), w, NULL);
	return true;
}

static void check_domain(struct watch *w)
{
	w->last_check = now_ms();
	if (!conn_ensure(w))
		return;
	int state = VIR_DOMAIN_NOSTATE, reason = 0;
	if (virDomainGetState(w->dom, &state, &reason, 0) < 0) {
		/* a transient domain vanishes when it stops; a dead connection is found next time */
		if (virConnectIsAlive(w->conn) == 1)
			w->gone = true;
		return;
	}
	bool off = state == VIR_DOMAIN_SHUTOFF || state == VIR_DOMAIN_CRASHED || state == VIR_DOMAIN_NOSTATE;
	/* snapshot restore of a running VM: libvirt stops its QEMU and starts another (-loadvm); the VM
	 * runs on, so the lock stays held unless the new QEMU does not come */
	if (off && state == VIR_DOMAIN_SHUTOFF && reason == VIR_DOMAIN_SHUTOFF_FROM_SNAPSHOT) {
		if (!w->off_since)
			w->off_since = now_ms();
		if (now_ms() - w->off_since < WATCH_REVERT_MS)
			return;
	}
	w->off_since = 0;
	if (off) {
		w->gone = true;
		wlog("the domain stopped (state %d, reason %d)", state, reason);
	}
}

/* Ask the agent, over the channel, how many sessions run in the guest: 1 when it is busy (a
 * session holds the channel), 0 with *ret_sessions, < 0 when it does not answer. */
static int probe_agent(struct watch *w, uint32_t *ret_sessions)
{
	if (!conn_ensure(w))
		return -ENOTCONN;
	int fd = -1;
	struct hutch_error e = {0};
	int r = virt_channel_open(w->conn, w->dom, WATCH_PROBE_MS, &fd, NULL, 0, &e);
	if (r == -EBUSY) {
		hutch_error_clear(&e);
		return 1;
	}
	if (r < 0) {
		agent_set(w, "unresponsive", e.msg ? e.msg : "no HELLO");
		hutch_error_clear(&e);
		return r;
	}
	r = frame_write(fd, MSG_STAT, 0, NULL, 0) < 0 ? -EPIPE : -ETIMEDOUT;
	struct proto_reader rd;
	proto_reader_init(&rd);
	uint64_t deadline = now_ms() + WATCH_PROBE_MS;
	while (r == -ETIMEDOUT) {
		uint64_t t = now_ms();
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (t >= deadline || poll(&p, 1, (int)(deadline - t)) <= 0)
			break;
		if (proto_reader_read_fd(&rd, fd) <= 0) {
			r = -EPIPE;
			break;
		}
		struct proto_frame f;
		while (r == -ETIMEDOUT && proto_reader_next(&rd, &f) == 1) {
			if (f.type != MSG_ACTIVITY)
				continue;
			struct proto_cursor c;
			proto_cursor_init(&c, f.payload, f.len);
			uint32_t untrusted_sessions = proto_get_u32(&c);
			if (c.ok) {
				*ret_sessions = untrusted_sessions; /* only compared with 0 */
				r = 0;
			}
		}
	}
	proto_reader_free(&rd);
	close(fd);
	if (r == 0)
		agent_set(w, "ready", "answered a STAT");
	else
		agent_set(w, "unresponsive", "no answer to a STAT");
	return r;
}

static void policy_stop(struct watch *w, const char *reason, const char *detail)
{
	if (w->stopping)
		return;
	w->stopping = true;
	wlog("stopping: %s", detail);
	struct hutch_error e = {0};
	if (libvirt_policy_stop(&w->vm, reason, detail, WATCH_STOP_TIMEOUT, &e) < 0)
		wlog("stop failed: %s", e.msg);
	hutch_error_clear(&e);
	check_domain(w);
	if (!w->gone)
		w->stopping = false; /* try again at the next deadline */
}

static void check_idle(struct watch *w)
{
	uint64_t idle_ms = w->vm.spec->idle_s * 1000;
	if (!idle_ms || w->sessions || w->stopping || now_ms() < w->last_activity + idle_ms)
		return;
	uint32_t sessions = 0;
	int r = probe_agent(w, &sessions);
	if (r == 0 && sessions == 0)
		return policy_stop(w, "idle", "idle (auto_shutdown.idle)");
	/* busy, programs still run in the guest, or the agent is not ready: not idle now */
	w->last_activity = now_ms();
}

static void client_close(struct watch *w, size_t i)
{
	struct wclient *c = w->cl[i];
	w->cl[i] = NULL;
	close(c->fd);
	if (c->session) {
		w->sessions--;
		w->last_activity = now_ms();
		if (c->app && --w->apps_live == 0 && w->vm.spec->on_app_exit)
			policy_stop(w, "app-exit", "the last app exited (auto_shutdown.on_app_exit)");
		else if (c->run && w->ephemeral)
			policy_stop(w, "requested", "the disposable VM's client went away");
	}
	free(c);
}

static void client_line(struct watch *w, size_t i)
{
	struct wclient *c = w->cl[i];
	c->registered = true;
	json_object *o = json_tokener_parse(c->buf), *v;
	const char *op = o && json_object_object_get_ex(o, "op", &v) ? json_object_get_string(v) : "";
	if (!strcmp(op, "session")) {
		c->session = true;
		c->app = json_object_object_get_ex(o, "app", &v) && json_object_get_boolean(v);
		c->run = json_object_object_get_ex(o, "run", &v) && json_object_get_boolean(v);
		w->sessions++;
		w->apps_live += c->app;
		w->last_activity = now_ms();
		/* a session got through the channel: the agent answers */
		agent_set(w, "ready", "a session connected");
	} else if (!strcmp(op, "status")) {
		json_object *s = json_object_new_object();
		json_object_object_add(s, "kvm", json_object_new_boolean(w->kvm));
		json_object_object_add(s, "agent", json_object_new_string(w->agent));
		json_object_object_add(s, "agent_since", json_object_new_int64(w->agent_since));
		json_object_object_add(s, "agent_why", json_object_new_string(w->agent_why));
		json_object_object_add(s, "sessions", json_object_new_int(w->sessions));
		send_line(c->fd, s);
		json_object_put(s);
		json_object_put(o);
		return client_close(w, i);
	} else {
		json_object_put(o);
		return client_close(w, i);
	}
	json_object_put(o);
}

static void client_readable(struct watch *w, size_t i)
{
	struct wclient *c = w->cl[i];
	char tmp[256];
	char *dst = c->registered ? tmp : c->buf + c->len;
	size_t room = c->registered ? sizeof(tmp) : sizeof(c->buf) - 1 - c->len;
	ssize_t n = read(c->fd, dst, room);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0 || (!c->registered && room == 0))
		return client_close(w, i);
	if (c->registered)
		return; /* a session says nothing more: only its end counts */
	c->len += (size_t)n;
	c->buf[c->len] = 0;
	char *nl = strchr(c->buf, '\n');
	if (nl) {
		*nl = 0;
		client_line(w, i);
	} else if (c->len + 1 >= sizeof(c->buf)) {
		client_close(w, i);
	}
}

static void accept_client(struct watch *w)
{
	int fd = accept4(w->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	for (size_t i = 0; i < WATCH_MAX_CLIENTS; i++)
		if (!w->cl[i]) {
			w->cl[i] = xcalloc(1, sizeof(*w->cl[i]));
			w->cl[i]->fd = fd;
			return;
		}
	close(fd);
}

static int next_timeout(struct watch *w)
{
	uint64_t t = now_ms(), dl = w->last_check + WATCH_CHECK_MS;
	if (w->vm.spec->idle_s && !w->sessions) {
		uint64_t idle_dl = w->last_activity + w->vm.spec->idle_s * 1000;
		if (idle_dl < dl)
			dl = idle_dl;
	}
	return dl > t ? (int)(dl - t) : 0;
}

static void watch_loop(struct watch *w)
{
	while (!w->gone) {
		struct pollfd p[2 + WATCH_MAX_CLIENTS];
		size_t map[2 + WATCH_MAX_CLIENTS];
		nfds_t n = 0;
		p[n++] = (struct pollfd){.fd = w->ev[0], .events = POLLIN};
		p[n++] = (struct pollfd){.fd = w->listen_fd, .events = POLLIN};
		for (size_t i = 0; i < WATCH_MAX_CLIENTS; i++)
			if (w->cl[i]) {
				map[n] = i;
				p[n++] = (struct pollfd){.fd = w->cl[i]->fd, .events = POLLIN};
			}
		int r = poll(p, n, next_timeout(w));
		if (r < 0 && errno != EINTR)
			break;
		bool event = r > 0 && p[0].revents;
		if (event) {
			char buf[64];
			while (read(w->ev[0], buf, sizeof(buf)) > 0)
				;
		}
		if (r > 0 && p[1].revents)
			accept_client(w);
		for (nfds_t k = 2; r > 0 && k < n; k++)
			if (p[k].revents && w->cl[map[k]])
				client_readable(w, map[k]);
		if (event || now_ms() >= w->last_check + WATCH_CHECK_MS)
			check_domain(w);
		if (!w->gone)
			check_idle(w);
	}
}

int virt_watch_main(struct store *st, const char *name, int lock_fd, int notify_fd, bool ephemeral, const char *agent,
		    bool kvm)
{
	struct watch w = {.st = st, .cb_id = -1, .ev = {-1, -1}, .ephemeral = ephemeral, .kvm = kvm};
	struct hutch_error e = {0};
	if (vm_load(st, name, &w.vm, &e) < 0 || virt_uri_for(st, w.vm.spec, &w.uri, &e) < 0) {
		wlog("%s", e.msg);
		hutch_error_clear(&e);
		return 1;
	}
	_cleanup_free_ char *sock = store_run_file(st, name, VIRT_WATCH_SOCK);
	unlink(sock); /* a dead supervisor's: we hold the run lock */
	w.listen_fd = unix_listen(sock, &e);
	if (w.listen_fd < 0 || pipe2(w.ev, O_CLOEXEC | O_NONBLOCK) < 0) {
		wlog("cannot listen: %s", e.msg ? e.msg : strerror(errno));
		hutch_error_clear(&e);
		vm_release(&w.vm);
		free(w.uri);
		return 1;
	}
	fcntl(w.listen_fd, F_SETFL, fcntl(w.listen_fd, F_GETFL) | O_NONBLOCK);
	w.last_activity = now_ms(); /* the idle clock starts when the guest is up */
	agent_set(&w, agent,
		  !strcmp(agent, "ready")     ? "said HELLO to start"
		  : !strcmp(agent, "waiting") ? "start did not wait for it"
					      : "the domain was started outside hutch");
	wlog("watching '%s' on %s (idle %llu s, on_app_exit %s%s)", name, w.uri, (unsigned long long)w.vm.spec->idle_s,
	     w.vm.spec->on_app_exit ? "on" : "off", ephemeral ? ", disposable" : "");
	/* start returns now: whatever session comes next finds us listening */
	if (notify_fd >= 0) {
		if (write(notify_fd, "k", 1) != 1)
			wlog("start did not wait for our word");
		close(notify_fd);
	}
	check_domain(&w);
	watch_loop(&w);
	wlog("exiting: the domain is not running");
	unlink(sock);
	close(w.listen_fd);
	for (size_t i = 0; i < WATCH_MAX_CLIENTS; i++)
		if (w.cl[i]) {
			close(w.cl[i]->fd);
			free(w.cl[i]);
		}
	conn_drop(&w);
	close(w.ev[0]);
	close(w.ev[1]);
	close(lock_fd); /* the VM is stopped from here on */
	if (ephemeral) {
		/* run --rm: the instance goes with its transient domain, as the monitor removes it, even
		 * when the run that made it was killed (a live run removes it too: one of us finds nothing) */
		struct destroy_opts d = {.force = true, .disk = true};
		if (vm_destroy(st, name, &d, &e) < 0 && e.code != ENOENT)
			wlog("cannot remove the disposable instance: %s", e.msg);
		hutch_error_clear(&e);
	}
	vm_release(&w.vm);
	free(w.uri);
	return 0;
}

#else /* built without libvirt: no libvirt VM runs, so nothing to watch */

int virt_watch_spawn(struct vm *vm, int lock_fd, bool ephemeral, const char *agent, bool kvm, struct hutch_error *err)
{
	return hutch_error_set(err, ENOTSUP, "this hutch was built without the libvirt backend");
}

int virt_watch_main(struct store *st, const char *name, int lock_fd, int notify_fd, bool ephemeral, const char *agent,
		    bool kvm)
{
	return 1;
}
#endif
