/* libvirt's lifecycle events for `hutch events`: one subscription (virConnectDomainEventRegisterAny)
 * per URI, on libvirt's event loop thread (virt_conn.c), turned into the same JSON lines that the
 * qemu backend's monitor writes to events.jsonl. Nothing is polled: libvirt pushes. */
#include "events.h"
#include "virt_conn.h"

#include <json-c/json.h>
#include <string.h>

#define STOP_NOTE "libvirt-stop-note"
#define STOP_NOTE_MAX_AGE_S 180 /* longer than any stop takes; an old note says nothing */

void virt_events_note_stop(const struct store *st, const char *name, const char *reason, const char *detail)
{
	_cleanup_free_ char *p = store_vm_file(st, name, STOP_NOTE);
	_cleanup_free_ char *s = xasprintf("%llu %s %s\n", (unsigned long long)now_real_s(), reason, detail);
	virt_state_write(p, s);
}

void virt_events_clear_note(const struct store *st, const char *name)
{
	_cleanup_free_ char *p = store_vm_file(st, name, STOP_NOTE);
	unlink(p);
}

#ifdef HAVE_LIBVIRT
#include "backend.h"
#include "domain_xml.h"

#include <libvirt/libvirt.h>
#include <pthread.h>

#include "lazyvirt.h"

/* The note lv_stop left, when it is recent: "requested" and its sentence. It is read, never taken:
 * several followers may be watching; the next start removes it (virt_events_clear_note). */
static bool read_note(const struct store *st, const char *name, char *reason, size_t rlen, char *detail, size_t dlen)
{
	_cleanup_free_ char *p = store_vm_file(st, name, STOP_NOTE);
	_cleanup_free_ char *s = NULL;
	if (read_file(p, 1024, &s, NULL, NULL) < 0)
		return false;
	s[strcspn(s, "\n")] = 0;
	char *sp1 = strchr(s, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp2)
		return false;
	*sp1 = *sp2 = 0;
	long long at = 0;
	if (parse_ll(s, 0, INT64_MAX, &at) < 0 || (uint64_t)at + STOP_NOTE_MAX_AGE_S < now_real_s())
		return false;
	snprintf(reason, rlen, "%s", sp1 + 1);
	snprintf(detail, dlen, "%s", sp2 + 1);
	return true;
}

struct sub {
	char *uri;
	virConnectPtr conn;
	int id;
	const struct store *st;
	int fd;
	/* hutch VMs running at the last look, each with a NUL: what a reconnect compares against */
	struct strbuf running;
	bool synced, lost;
	/* VMs a reconnect found still running: a new daemon lists its domains as running before it has
	 * reconnected to their QEMUs, and one whose QEMU is gone then stops with no event at all */
	struct strbuf settle;
	uint64_t settle_until;
};
#define SETTLE_MS 60000
static struct sub subs[8];
static pthread_mutex_t subs_lock = PTHREAD_MUTEX_INITIALIZER;
/* sub.running: libvirt's event thread updates it, a reconnect reads and replaces it */
static pthread_mutex_t running_lock = PTHREAD_MUTEX_INITIALIZER;

/* The hutch VM behind a domain on this URI, when it is one of ours: hutch-NAME, defined here with
 * the libvirt backend on the same URI. */
static bool vm_of(struct sub *s, const char *domain, char *ret, size_t len)
{
	size_t pl = strlen(DOMAIN_PREFIX);
	if (strncmp(domain, DOMAIN_PREFIX, pl) || !store_name_valid(domain + pl))
		return false;
	struct vm vm;
	if (vm_load((struct store *)s->st, domain + pl, &vm, NULL) < 0)
		return false;
	_cleanup_free_ char *uri = NULL;
	bool ours = vm.spec->backend && !strcmp(vm.spec->backend, "libvirt") &&
		    virt_uri_for(s->st, vm.spec, &uri, NULL) == 0 && !strcmp(uri, s->uri);
	vm_release(&vm);
	if (ours)
		snprintf(ret, len, "%s", domain + pl);
	return ours;
}

static void emit(struct sub *s, const char *name, const char *event, const char *reason, const char *detail)
{
	_cleanup_free_ char *line = events_line(name, "libvirt", event, reason, detail);
	_cleanup_free_ char *nl = xasprintf("%s\n", line);
	write_all(s->fd, nl, strlen(nl)); /* one line under PIPE_BUF: atomic */
}

static bool in_list(const struct strbuf *l, const char *name)
{
	for (size_t i = 0; i < l->len; i += strlen(l->buf + i) + 1)
		if (!strcmp(l->buf + i, name))
			return true;
	return false;
}

/* NAME runs now, or not; running_lock held. */
static void set_running_locked(struct sub *s, const char *name, bool running)
{
	if (running && !in_list(&s->running, name))
		strbuf_add(&s->running, name, strlen(name) + 1);
	for (size_t i = 0; !running && i < s->running.len; i += strlen(s->running.buf + i) + 1)
		if (!strcmp(s->running.buf + i, name)) {
			size_t n = strlen(name) + 1;
			memmove(s->running.buf + i, s->running.buf + i + n, s->running.len - i - n);
			s->running.len -= n;
			break;
		}
}

/* An event said so: NAME runs now, or not. */
static void set_running(struct sub *s, const char *name, bool running)
{
	pthread_mutex_lock(&running_lock);
	set_running_locked(s, name, running);
	pthread_mutex_unlock(&running_lock);
}

static const char *const stopped_why[] = {
	[VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN] = "poweroff",     [VIR_DOMAIN_EVENT_STOPPED_DESTROYED] = "destroyed",
	[VIR_DOMAIN_EVENT_STOPPED_CRASHED] = "crashed",	      [VIR_DOMAIN_EVENT_STOPPED_MIGRATED] = "migrated",
	[VIR_DOMAIN_EVENT_STOPPED_SAVED] = "saved",	      [VIR_DOMAIN_EVENT_STOPPED_FAILED] = "qemu-failed",
	[VIR_DOMAIN_EVENT_STOPPED_FROM_SNAPSHOT] = "snapshot"};
static const char *const stopped_text[] = {
	[VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN] = "the guest powered off",
	[VIR_DOMAIN_EVENT_STOPPED_DESTROYED] = "libvirt destroyed the domain (virsh destroy, or a forced stop)",
	[VIR_DOMAIN_EVENT_STOPPED_CRASHED] = "the guest crashed",
	[VIR_DOMAIN_EVENT_STOPPED_MIGRATED] = "migrated to another host",
	[VIR_DOMAIN_EVENT_STOPPED_SAVED] = "saved to a state file",
	[VIR_DOMAIN_EVENT_STOPPED_FAILED] = "qemu or libvirt failed: the emulator exited unexpectedly",
	[VIR_DOMAIN_EVENT_STOPPED_FROM_SNAPSHOT] = "an offline snapshot was loaded"};
static const char *const started_why[] = {[VIR_DOMAIN_EVENT_STARTED_BOOTED] = "booted",
					  [VIR_DOMAIN_EVENT_STARTED_MIGRATED] = "migrated",
					  [VIR_DOMAIN_EVENT_STARTED_RESTORED] = "restored",
					  [VIR_DOMAIN_EVENT_STARTED_FROM_SNAPSHOT] = "snapshot",
					  [VIR_DOMAIN_EVENT_STARTED_WAKEUP] = "wakeup"};

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
	(void)conn;
	struct sub *s = opaque;
	const char *domain = virDomainGetName(dom);
	char name[64];
	if (!domain || !vm_of(s, domain, name, sizeof(name)))
		return 0;
	_cleanup_free_ char *line = NULL;
	char reason[32] = "", text[256] = "";
	unsigned d = (unsigned)detail;
	switch (event) {
	case VIR_DOMAIN_EVENT_STARTED:
		line = events_line(name, "libvirt", "started", d < ARRAY_SIZE(started_why) ? started_why[d] : NULL,
				   NULL);
		break;
	case VIR_DOMAIN_EVENT_STOPPED: {
		bool crash = d == VIR_DOMAIN_EVENT_STOPPED_CRASHED || d == VIR_DOMAIN_EVENT_STOPPED_FAILED;
		const char *why = d < ARRAY_SIZE(stopped_why) ? stopped_why[d] : "unknown";
		const char *how = d < ARRAY_SIZE(stopped_text) ? stopped_text[d] : "stopped";
		/* hutch itself asked: say so, with how it ended */
		if (!crash && read_note(s->st, name, reason, sizeof(reason), text, sizeof(text))) {
			_cleanup_free_ char *both = xasprintf("%s; %s", text, how);
			line = events_line(name, "libvirt", "stopped", reason, both);
		} else
			line = events_line(name, "libvirt", crash ? "crashed" : "stopped", why, how);
		break;
	}
	case VIR_DOMAIN_EVENT_CRASHED:
		line = events_line(name, "libvirt", "crashed",
				   detail == VIR_DOMAIN_EVENT_CRASHED_PANICKED ? "panic" : "crashloaded",
				   "the guest kernel panicked");
		break;
	default:
		return 0; /* defined, undefined, suspended, resumed, pmsuspended: not lifecycle news here */
	}
	if (event == VIR_DOMAIN_EVENT_STARTED || event == VIR_DOMAIN_EVENT_STOPPED)
		set_running(s, name, event == VIR_DOMAIN_EVENT_STARTED);
	size_t n = strlen(line);
	_cleanup_free_ char *nl = xasprintf("%s\n", line);
	write_all(s->fd, nl, n + 1); /* one line under PIPE_BUF: atomic */
	return 0;
}

/* Which hutch VMs on this URI run now, into s->running. After a lost connection, whatever changed
 * meanwhile is said as an event of its own (reason "missed"): libvirt does not replay what it sent
 * while nobody listened, and a VM that stopped and started again in the gap looks unchanged. */
static void sync_running(struct sub *s, virConnectPtr conn)
{
	virDomainPtr *doms = NULL;
	int n = virConnectListAllDomains(conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
	if (n < 0)
		return; /* unknown: the next reconnect compares with the older list */
	struct strbuf now = STRBUF_INIT;
	for (int i = 0; i < n; i++) {
		const char *domain = virDomainGetName(doms[i]);
		char name[64];
		if (domain && vm_of(s, domain, name, sizeof(name)))
			strbuf_add(&now, name, strlen(name) + 1);
		virDomainFree(doms[i]);
	}
	free(doms);
	pthread_mutex_lock(&running_lock);
	if (s->lost && s->synced) {
		_cleanup_free_ char *gap = xasprintf("while the connection to %s was down (libvirt's state, read again "
						     "once it was back)",
						     s->uri);
		for (size_t i = 0; i < now.len; i += strlen(now.buf + i) + 1)
			if (!in_list(&s->running, now.buf + i))
				emit(s, now.buf + i, "started", "missed", gap);
		for (size_t i = 0; i < s->running.len; i += strlen(s->running.buf + i) + 1) {
			const char *name = s->running.buf + i;
			if (in_list(&now, name)) {
				emit(s, name, "reconnected", NULL,
				     "still running; events in the gap, if any, are lost");
				strbuf_add(&s->settle, name, strlen(name) + 1);
				s->settle_until = now_ms() + SETTLE_MS;
				continue;
			}
			char reason[32] = "", text[256] = "";
			_cleanup_free_ char *why = read_note(s->st, name, reason, sizeof(reason), text, sizeof(text))
							   ? xasprintf("%s (%s)", gap, text)
							   : xstrdup(gap);
			emit(s, name, "stopped", "missed", why);
		}
	}
	strbuf_release(&s->running);
	s->running = now;
	s->synced = true;
	s->lost = false;
	pthread_mutex_unlock(&running_lock);
}

static int subscribe(struct sub *s, struct hutch_error *err)
{
	void *conn = NULL;
	int r = virt_open(s->uri, VIRT_CONNECT_TIMEOUT_MS, &conn, err);
	if (r < 0) {
		virt_forget(s->uri); /* virt_events_check tries again */
		return r;
	}
	int id = virConnectDomainEventRegisterAny(conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
						  VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), s, NULL);
	if (id < 0) {
		r = hutch_error_set(err, EIO, "cannot subscribe to libvirt's events at '%s': %s", s->uri,
				    virt_last_error("unknown error"));
		virt_close(conn);
		return r;
	}
	s->conn = conn;
	s->id = id;
	sync_running(s, conn);
	return 0;
}

int virt_events_watch(const struct store *st, const char *uri, int out_fd, struct hutch_error *err)
{
	pthread_mutex_lock(&subs_lock);
	struct sub *s = NULL;
	int r = 0;
	for (size_t i = 0; i < ARRAY_SIZE(subs); i++)
		if (subs[i].uri && !strcmp(subs[i].uri, uri))
			goto out;
	for (size_t i = 0; !s && i < ARRAY_SIZE(subs); i++)
		if (!subs[i].uri)
			s = &subs[i];
	if (!s) {
		r = hutch_error_set(err, ENOSPC, "too many libvirt URIs to watch");
		goto out;
	}
	*s = (struct sub){.uri = xstrdup(uri), .st = st, .fd = out_fd, .id = -1};
	r = subscribe(s, err); /* an unreachable URI is tried again by virt_events_check */
out:
	pthread_mutex_unlock(&subs_lock);
	return r;
}

/* After a reconnect: a VM said to be still running whose domain libvirt now has as stopped, with no
 * event for it (its reconnect to a dead QEMU sends none), is said stopped then. */
static void settle_check(struct sub *s)
{
	if (!s->settle.len)
		return;
	struct strbuf keep = STRBUF_INIT; /* settle is only touched under subs_lock */
	for (size_t i = 0; i < s->settle.len; i += strlen(s->settle.buf + i) + 1) {
		const char *name = s->settle.buf + i;
		/* libvirt's calls outside running_lock, which its event thread takes */
		_cleanup_free_ char *domain = domain_xml_name(name);
		virDomainPtr d = virDomainLookupByName(s->conn, domain);
		int state = VIR_DOMAIN_NOSTATE;
		bool known = d && virDomainGetState(d, &state, NULL, 0) == 0;
		if (d)
			virDomainFree(d);
		bool stopped = !known || state == VIR_DOMAIN_SHUTOFF || state == VIR_DOMAIN_CRASHED;
		pthread_mutex_lock(&running_lock);
		if (stopped && in_list(&s->running, name)) { /* else an event said it stopped */
			_cleanup_free_ char *why = xasprintf(
				"its QEMU was gone when libvirt, back on %s, reconnected to it (libvirt says so with no event)",
				s->uri);
			emit(s, name, "stopped", "missed", why);
			set_running_locked(s, name, false);
		}
		pthread_mutex_unlock(&running_lock);
		if (!stopped && now_ms() < s->settle_until)
			strbuf_add(&keep, name, strlen(name) + 1);
	}
	strbuf_release(&s->settle);
	s->settle = keep;
}

void virt_events_check(const struct store *st, int out_fd)
{
	(void)st;
	(void)out_fd;
	pthread_mutex_lock(&subs_lock);
	for (size_t i = 0; i < ARRAY_SIZE(subs); i++) {
		struct sub *s = &subs[i];
		if (s->uri && s->conn && virConnectIsAlive(s->conn) == 1)
			settle_check(s);
		if (!s->uri || (s->conn && virConnectIsAlive(s->conn) == 1))
			continue;
		if (s->conn) {
			virConnectDomainEventDeregisterAny(s->conn, s->id);
			virt_close(s->conn);
			s->conn = NULL;
			/* say so at once, for every VM this URI ran: nothing arrives until it is back */
			_cleanup_free_ char *why = xasprintf("the connection to %s was lost: events are missed until "
							     "it is back, then the VMs' state is read again",
							     s->uri);
			pthread_mutex_lock(&running_lock);
			for (size_t k = 0; k < s->running.len; k += strlen(s->running.buf + k) + 1)
				emit(s, s->running.buf + k, "connection-lost", NULL, why);
			s->lost = true;
			pthread_mutex_unlock(&running_lock);
			virt_forget(s->uri);
		}
		subscribe(s, NULL);
	}
	pthread_mutex_unlock(&subs_lock);
}

#else
int virt_events_watch(const struct store *st, const char *uri, int out_fd, struct hutch_error *err) { return 0; }
void virt_events_check(const struct store *st, int out_fd) {}
#endif
