/* The monitor's balloon driver (monitor_balloon.h). */
#include "monitor_balloon.h"
#include "config.h"
#include "qemu_devices.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BALLOON_QOM "/machine/peripheral/" QEMU_BALLOON_ID
#define QMP_WAIT_MS 3000

void mon_balloon_init(struct mon_balloon *b, const struct store *st, const struct vm_spec *s, char *const *argv)
{
	memset(b, 0, sizeof(*b));
	b->on = qemu_argv_has_balloon(argv);
	struct hutch_config cfg;
	if (config_load(st, &cfg, NULL) == 0) {
		b->k = cfg.balloon;
		config_release(&cfg);
	} else {
		balloon_knobs_default(&b->k);
	}
	b->max = s->memory;
	b->floor = s->balloon_min;
	b->actual = b->target = s->memory;
	b->next_at = now_ms() + 1000;
	snprintf(b->reason, sizeof(b->reason), "%s", b->on ? "not polled yet" : "the VM has no balloon");
}

uint64_t mon_balloon_deadline(const struct mon_balloon *b) { return b->on ? b->next_at : UINT64_MAX; }

int balloon_read_psi(const char *path, double *ret)
{
	char *text = NULL;
	size_t len;
	if (read_file(path, 4096, &text, &len, NULL) < 0)
		return -ENOENT;
	/* "some avg10=1.23 avg60=... total=..." */
	const char *p = strstr(text, "some avg10=");
	double v = p ? strtod(p + strlen("some avg10="), NULL) : -1;
	free(text);
	if (!p || v < 0 || v > 100)
		return -EINVAL;
	*ret = v;
	return 0;
}

int balloon_read_meminfo(const char *path, uint64_t *ret_available, uint64_t *ret_total)
{
	char *text = NULL;
	size_t len;
	if (read_file(path, 64 * 1024, &text, &len, NULL) < 0)
		return -ENOENT;
	const char *a = strstr(text, "\nMemAvailable:"), *t = strstr(text, "MemTotal:");
	unsigned long long av = a ? strtoull(a + strlen("\nMemAvailable:"), NULL, 10) : 0;
	unsigned long long tot = t ? strtoull(t + strlen("MemTotal:"), NULL, 10) : 0;
	free(text);
	if (!a || !t || !tot)
		return -EINVAL;
	*ret_available = (uint64_t)av * 1024;
	*ret_total = (uint64_t)tot * 1024;
	return 0;
}

static void read_host(struct mon_balloon *b)
{
	const char *psi = getenv("HUTCH_PSI_FILE");
	_cleanup_free_ char *pp = psi && *psi ? xstrdup(psi) : host_path("HUTCH_PROC_ROOT", "/proc/pressure/memory");
	_cleanup_free_ char *mp = host_path("HUTCH_PROC_ROOT", "/proc/meminfo");
	if (balloon_read_psi(pp, &b->psi) < 0)
		b->psi = 0; /* no PSI (an old kernel, or the test's file removed): no pressure from it */
	if (balloon_read_meminfo(mp, &b->host_available, &b->host_total) < 0)
		b->host_available = b->host_total = 0;
}

static void note_error(struct mon_balloon *b, const char *what, struct hutch_error *err)
{
	snprintf(b->error, sizeof(b->error), "%s: %s", what, err->msg ? err->msg : "failed");
	hutch_error_clear(err);
}

static void arm_stats(struct mon_balloon *b, struct qmp *q)
{
	struct hutch_error err = {0};
	json_object *args = json_object_new_object();
	uint64_t s = (b->k.min_poll_ms + 999) / 1000;
	json_object_object_add(args, "path", json_object_new_string(BALLOON_QOM));
	json_object_object_add(args, "property", json_object_new_string("guest-stats-polling-interval"));
	json_object_object_add(args, "value", json_object_new_int64((int64_t)(s ? s : 1)));
	if (qmp_execute(q, "qom-set", args, QMP_WAIT_MS, NULL, &err) < 0)
		note_error(b, "qom-set guest-stats-polling-interval", &err);
	else
		b->stats_armed = true;
}

static int64_t stat_of(json_object *stats, const char *key)
{
	json_object *v;
	if (!json_object_object_get_ex(stats, key, &v) || !json_object_is_type(v, json_type_int))
		return -1;
	return json_object_get_int64(v);
}

/* query-balloon's actual, and the guest's statistics (guest-supplied: bounded by its memory). */
static void read_guest(struct mon_balloon *b, struct qmp *q)
{
	struct hutch_error err = {0};
	json_object *ret = NULL, *v, *stats;
	if (qmp_execute(q, "query-balloon", NULL, QMP_WAIT_MS, &ret, &err) < 0) {
		note_error(b, "query-balloon", &err);
		return;
	}
	if (json_object_object_get_ex(ret, "actual", &v) && json_object_get_int64(v) > 0)
		b->actual = (uint64_t)json_object_get_int64(v) < b->max ? (uint64_t)json_object_get_int64(v) : b->max;
	json_object_put(ret);
	ret = NULL;
	json_object *args = json_object_new_object();
	json_object_object_add(args, "path", json_object_new_string(BALLOON_QOM));
	json_object_object_add(args, "property", json_object_new_string("guest-stats"));
	if (qmp_execute(q, "qom-get", args, QMP_WAIT_MS, &ret, &err) < 0) {
		note_error(b, "qom-get guest-stats", &err);
		return;
	}
	int64_t untrusted_avail = -1, untrusted_free = -1, untrusted_when = 0;
	if (json_object_object_get_ex(ret, "stats", &stats)) {
		untrusted_avail = stat_of(stats, "stat-available-memory");
		untrusted_free = stat_of(stats, "stat-free-memory");
	}
	if (json_object_object_get_ex(ret, "last-update", &v))
		untrusted_when = json_object_get_int64(v);
	json_object_put(ret);
	/* QEMU reports -1 until the guest's driver has sent statistics */
	b->have_stats = untrusted_when > 0 && untrusted_avail >= 0;
	if (b->have_stats) {
		b->guest_available = (uint64_t)untrusted_avail < b->max ? (uint64_t)untrusted_avail : b->max;
		b->guest_free = untrusted_free >= 0 && (uint64_t)untrusted_free < b->max ? (uint64_t)untrusted_free : 0;
	}
}

static int set_target(struct mon_balloon *b, struct qmp *q, uint64_t target, struct hutch_error *err)
{
	json_object *args = json_object_new_object();
	json_object_object_add(args, "value", json_object_new_int64((int64_t)target));
	int r = qmp_execute(q, "balloon", args, QMP_WAIT_MS, NULL, err);
	if (r == 0)
		b->target = target;
	return r;
}

static void decide(struct mon_balloon *b, struct qmp *q)
{
	struct hutch_error err = {0};
	if (b->manual) {
		b->next_poll_ms = b->k.poll_ms;
		snprintf(b->reason, sizeof(b->reason),
			 "manual target (hutch balloon --target auto returns it to the policy)");
		if (b->target != b->manual_target && set_target(b, q, b->manual_target, &err) < 0)
			note_error(b, "balloon", &err);
		return;
	}
	struct balloon_input in = {.psi_avg10 = b->psi,
				   .host_available = b->host_available,
				   .host_total = b->host_total,
				   .max = b->max,
				   .floor = b->floor,
				   .actual = b->actual,
				   .have_stats = b->have_stats,
				   .guest_available = b->guest_available};
	struct balloon_decision d;
	balloon_decide(&b->k, &in, &d);
	b->next_poll_ms = d.next_poll_ms;
	if (strcmp(b->reason, d.reason) || d.action != BALLOON_HOLD)
		b->decided_at = (int64_t)now_real_s();
	snprintf(b->reason, sizeof(b->reason), "%s", d.reason);
	/* a target already asked for is not asked again while the guest gets there */
	if (d.action != BALLOON_HOLD && d.target != b->target && set_target(b, q, d.target, &err) < 0)
		note_error(b, "balloon", &err);
	else if (d.action != BALLOON_HOLD)
		b->error[0] = 0;
	if (d.action == BALLOON_HOLD)
		b->target = b->actual;
}

void mon_balloon_tick(struct mon_balloon *b, struct qmp *q, uint64_t now)
{
	if (!b->on || now < b->next_at)
		return;
	b->next_at = now + b->k.poll_ms;
	if (!q)
		return;
	if (!b->stats_armed)
		arm_stats(b, q);
	read_host(b);
	read_guest(b, q);
	decide(b, q);
	b->next_at = now_ms() + (b->next_poll_ms ? b->next_poll_ms : b->k.poll_ms);
}

static json_object *status(const struct mon_balloon *b)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	json_object_object_add(o, "enabled", json_object_new_boolean(b->on));
	json_object_object_add(o, "max", json_object_new_int64((int64_t)b->max));
	json_object_object_add(o, "floor",
			       json_object_new_int64((int64_t)(b->floor ? b->floor : b->k.critical_guest_available)));
	json_object_object_add(o, "actual", json_object_new_int64((int64_t)b->actual));
	json_object_object_add(o, "target", json_object_new_int64((int64_t)b->target));
	json_object_object_add(o, "guest_available",
			       b->have_stats ? json_object_new_int64((int64_t)b->guest_available) : NULL);
	json_object_object_add(o, "guest_free", b->have_stats ? json_object_new_int64((int64_t)b->guest_free) : NULL);
	json_object_object_add(o, "manual", json_object_new_boolean(b->manual));
	json_object_object_add(o, "host_psi_avg10", json_object_new_double(b->psi));
	json_object_object_add(o, "host_available", json_object_new_int64((int64_t)b->host_available));
	json_object_object_add(o, "reason", json_object_new_string(b->reason));
	json_object_object_add(o, "decided_at", json_object_new_int64(b->decided_at));
	json_object_object_add(o, "poll_ms",
			       json_object_new_int64((int64_t)(b->next_poll_ms ? b->next_poll_ms : b->k.poll_ms)));
	json_object_object_add(o, "error", b->error[0] ? json_object_new_string(b->error) : NULL);
	return o;
}

static json_object *fail(const char *msg)
{
	json_object *e = json_object_new_object();
	json_object_object_add(e, "ok", json_object_new_boolean(0));
	json_object_object_add(e, "error", json_object_new_string(msg));
	return e;
}

json_object *mon_balloon_request(struct mon_balloon *b, struct qmp *q, json_object *req)
{
	json_object *t;
	if (!json_object_object_get_ex(req, "target", &t))
		return status(b);
	if (!b->on)
		return fail(
			"the VM has no balloon (balloon: false in its spec, or a warm clone, whose memory must not be discarded)");
	if (!q)
		return fail("QMP is not connected");
	if (json_object_is_type(t, json_type_string) && !strcmp(json_object_get_string(t), "auto")) {
		b->manual = false;
		b->next_at = now_ms();
		snprintf(b->reason, sizeof(b->reason), "back to the policy");
		return status(b);
	}
	if (!json_object_is_type(t, json_type_int))
		return fail("target: expected a size or 'auto'");
	int64_t v = json_object_get_int64(t);
	uint64_t floor = b->floor ? b->floor : b->k.critical_guest_available;
	if (v < (int64_t)floor || (uint64_t)v > b->max) {
		char fs[32], ms[32], msg[160];
		snprintf(msg, sizeof(msg), "target must be between the floor %s and the memory %s",
			 format_size(floor, fs, sizeof(fs)), format_size(b->max, ms, sizeof(ms)));
		return fail(msg);
	}
	struct hutch_error err = {0};
	if (set_target(b, q, (uint64_t)v, &err) < 0) {
		json_object *e = fail(err.msg ? err.msg : "balloon failed");
		hutch_error_clear(&err);
		return e;
	}
	b->manual = true;
	b->manual_target = (uint64_t)v;
	b->decided_at = (int64_t)now_real_s();
	snprintf(b->reason, sizeof(b->reason), "manual target (hutch balloon --target auto returns it to the policy)");
	return status(b);
}
