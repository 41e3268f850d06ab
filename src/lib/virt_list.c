/* list's view of libvirt VMs: their URIs grouped, and per URI one connection and one call
 * (virConnectGetAllDomainStats with the state group) for every domain's state, all URIs at once on
 * their own threads, bounded together by VIRT_CONNECT_TIMEOUT_MS. A URI that fails or does not
 * answer makes its VMs "unknown" with the reason; the others are listed all the same. */
#include "backend_libvirt.h"

#include <string.h>

void libvirt_states_free(struct libvirt_state *s, size_t n)
{
	for (size_t i = 0; s && i < n; i++)
		free(s[i].error);
	free(s);
}

#ifdef HAVE_LIBVIRT
#include "domain_xml.h"
#include "virt_conn.h"

#include <libvirt/libvirt.h>
#include <pthread.h>
#include <time.h>

#include "lazyvirt.h"

/* Since the start that wrote libvirt-started (backend_libvirt.c). */
static uint64_t uptime(const struct store *st, const char *name)
{
	_cleanup_free_ char *p = store_vm_file(st, name, "libvirt-started");
	_cleanup_free_ char *s = NULL;
	long long v = 0;
	if (read_file(p, 64, &s, NULL, NULL) < 0)
		return 0;
	s[strcspn(s, "\n")] = 0;
	uint64_t t = now_real_s();
	return parse_ll(s, 0, INT64_MAX, &v) == 0 && (uint64_t)v < t ? t - (uint64_t)v : 0;
}

struct uri_job {
	char *uri;
	char **domains; /* hutch-NAME of each VM on this URI */
	int *states;	/* out: VIR_DOMAIN_* per domain, -1: no such domain */
	size_t n;
	char *error;
	bool done;
};

struct batch {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct uri_job *jobs;
	size_t njobs, pending;
	int refs; /* the caller and each thread still running: the last one frees */
};

static void batch_unref(struct batch *b)
{
	pthread_mutex_lock(&b->lock);
	bool last = --b->refs == 0;
	pthread_mutex_unlock(&b->lock);
	if (!last)
		return;
	for (size_t i = 0; i < b->njobs; i++) {
		free(b->jobs[i].uri);
		strv_free(b->jobs[i].domains);
		free(b->jobs[i].states);
		free(b->jobs[i].error);
	}
	free(b->jobs);
	pthread_mutex_destroy(&b->lock);
	pthread_cond_destroy(&b->cond);
	free(b);
}

struct job_arg {
	struct batch *b;
	size_t i;
};

static void *uri_thread(void *arg)
{
	struct job_arg *a = arg;
	struct batch *b = a->b;
	struct uri_job *j = &b->jobs[a->i];
	free(a);
	struct hutch_error err = {0};
	void *conn = NULL;
	int *states = xcalloc(j->n, sizeof(int));
	char *error = NULL;
	for (size_t k = 0; k < j->n; k++)
		states[k] = -1;
	if (virt_open(j->uri, VIRT_CONNECT_TIMEOUT_MS, &conn, &err) < 0) {
		error = xstrdup(err.msg ? err.msg : "cannot connect");
	} else {
		virDomainStatsRecordPtr *recs = NULL;
		int n = virConnectGetAllDomainStats(conn, VIR_DOMAIN_STATS_STATE, &recs, 0);
		if (n < 0)
			error = xasprintf("libvirt at '%s': %s", j->uri, virt_last_error("cannot list domains"));
		for (int r = 0; r < n; r++) {
			const char *name = virDomainGetName(recs[r]->dom);
			int st = VIR_DOMAIN_NOSTATE;
			virTypedParamsGetInt(recs[r]->params, recs[r]->nparams, "state.state", &st);
			for (size_t k = 0; name && k < j->n; k++)
				if (!strcmp(name, j->domains[k]))
					states[k] = st;
		}
		if (recs)
			virDomainStatsRecordListFree(recs);
		virt_close(conn);
	}
	hutch_error_clear(&err);
	pthread_mutex_lock(&b->lock);
	j->states = states;
	j->error = error;
	j->done = true;
	b->pending--;
	pthread_cond_signal(&b->cond);
	pthread_mutex_unlock(&b->lock);
	batch_unref(b);
	return NULL;
}

static struct uri_job *job_for(struct batch *b, const char *uri)
{
	for (size_t i = 0; i < b->njobs; i++)
		if (!strcmp(b->jobs[i].uri, uri))
			return &b->jobs[i];
	b->jobs = xrealloc(b->jobs, (b->njobs + 1) * sizeof(*b->jobs));
	b->jobs[b->njobs] = (struct uri_job){.uri = xstrdup(uri)};
	return &b->jobs[b->njobs++];
}

int libvirt_states(struct store *st, char *const *names, struct libvirt_state **ret)
{
	size_t n = strv_len(names);
	struct libvirt_state *out = xcalloc(n ? n : 1, sizeof(*out));
	struct batch *b = xcalloc(1, sizeof(*b));
	pthread_mutex_init(&b->lock, NULL);
	pthread_cond_init(&b->cond, NULL);
	b->refs = 1;
	size_t *job_of = xcalloc(n ? n : 1, sizeof(size_t)), *idx_of = xcalloc(n ? n : 1, sizeof(size_t));
	for (size_t i = 0; i < n; i++) {
		struct vm vm;
		if (vm_load(st, names[i], &vm, NULL) < 0)
			continue;
		_cleanup_free_ char *uri = NULL;
		if (vm.spec->backend && !strcmp(vm.spec->backend, "libvirt") &&
		    virt_uri_for(st, vm.spec, &uri, NULL) == 0) {
			struct uri_job *j = job_for(b, uri);
			j->domains = strv_push(j->domains, domain_xml_name(names[i]));
			out[i].libvirt = true;
			job_of[i] = (size_t)(j - b->jobs);
			idx_of[i] = j->n++;
		}
		vm_release(&vm);
	}
	for (size_t i = 0; i < b->njobs; i++) {
		struct job_arg *a = xmalloc(sizeof(*a));
		*a = (struct job_arg){.b = b, .i = i};
		pthread_t t;
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		pthread_mutex_lock(&b->lock);
		b->refs++;
		b->pending++;
		pthread_mutex_unlock(&b->lock);
		if (pthread_create(&t, &at, uri_thread, a) != 0) {
			free(a);
			b->jobs[i].error = xstrdup("cannot start a thread");
			b->jobs[i].done = true;
			b->pending--;
			b->refs--;
		}
		pthread_attr_destroy(&at);
	}
	/* one deadline for all: the connect timeout plus a little for the one call */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += VIRT_CONNECT_TIMEOUT_MS / 1000 + 5;
	pthread_mutex_lock(&b->lock);
	while (b->pending)
		if (pthread_cond_timedwait(&b->cond, &b->lock, &ts) == ETIMEDOUT)
			break;
	for (size_t i = 0; i < n; i++) {
		if (!out[i].libvirt)
			continue;
		struct uri_job *j = &b->jobs[job_of[i]];
		if (!j->done) {
			out[i].error = xasprintf("libvirt at '%s' did not answer within %d s", j->uri,
						 VIRT_CONNECT_TIMEOUT_MS / 1000 + 5);
		} else if (j->error) {
			out[i].error = xstrdup(j->error);
		} else {
			int s = j->states[idx_of[i]];
			out[i].known = true;
			out[i].running = s == VIR_DOMAIN_RUNNING || s == VIR_DOMAIN_BLOCKED || s == VIR_DOMAIN_PAUSED ||
					 s == VIR_DOMAIN_SHUTDOWN || s == VIR_DOMAIN_PMSUSPENDED;
			out[i].paused = s == VIR_DOMAIN_PAUSED;
			out[i].uptime_s = out[i].running ? uptime(st, names[i]) : 0;
		}
	}
	pthread_mutex_unlock(&b->lock);
	free(job_of);
	free(idx_of);
	batch_unref(b);
	*ret = out;
	return 0;
}
#else
int libvirt_states(struct store *st, char *const *names, struct libvirt_state **ret)
{
	size_t n = strv_len(names);
	struct libvirt_state *out = xcalloc(n ? n : 1, sizeof(*out));
	for (size_t i = 0; i < n; i++) {
		struct vm vm;
		if (vm_load(st, names[i], &vm, NULL) < 0)
			continue;
		if (vm.spec->backend && !strcmp(vm.spec->backend, "libvirt")) {
			out[i].libvirt = true;
			out[i].error = xstrdup("this hutch was built without the libvirt backend");
		}
		vm_release(&vm);
	}
	*ret = out;
	return 0;
}
#endif
