/* auto_forward's host side (see autofwd.h). */
#include "autofwd.h"

#include "config.h"
#include "listeners.h"
#include "qemu.h"

#include <stdio.h>
#include <string.h>

static void logf_(void (*log)(const char *), const char *fmt, ...) _printf_(2, 3);
static void logf_(void (*log)(const char *), const char *fmt, ...)
{
	if (!log)
		return;
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log(buf);
}

void autofwd_init(struct autofwd *a, bool on, long long cfg_max)
{
	memset(a, 0, sizeof(*a));
	a->on = on;
	a->max = cfg_max > 0 ? (size_t)cfg_max : AUTOFWD_MAX_DEFAULT;
}

void autofwd_release(struct autofwd *a)
{
	free(a->fw);
	memset(a, 0, sizeof(*a));
}

static bool reported(const uint16_t *ports, size_t n, uint16_t p)
{
	size_t lo = 0, hi = n; /* the report is ascending (checked by the decoder) */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (ports[mid] == p)
			return true;
		if (ports[mid] < p)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* Is host or guest port p (tcp) taken by a forward that is not ours, or host port p by one of ours? */
static bool static_uses(char *const *static_fw, unsigned p, bool guest)
{
	for (size_t i = 0; static_fw && static_fw[i]; i++) {
		struct forward f;
		if (forward_parse(static_fw[i], &f) == 0 && !f.udp && (guest ? f.guest : f.host) == p)
			return true;
	}
	return false;
}

static bool ours_host(const struct autofwd *a, unsigned p)
{
	for (size_t i = 0; i < a->n; i++)
		if (a->fw[i].host == p)
			return true;
	return false;
}

/* The same port when it is free on the host's loopback, else any free one nobody here has. */
static int pick_host(const struct autofwd *a, char *const *static_fw, uint16_t guest, uint16_t *ret)
{
	struct hutch_error err = {0};
	struct forward f = {.host = guest, .guest = guest};
	if (!static_uses(static_fw, guest, false) && !ours_host(a, guest) && forward_check_free(&f, &err) == 0) {
		*ret = guest;
		return 0;
	}
	hutch_error_clear(&err);
	for (int tries = 0; tries < 8; tries++) {
		f.host = 0;
		if (forward_pick_free(&f, &err) < 0) {
			hutch_error_clear(&err);
			return -1;
		}
		if (!static_uses(static_fw, f.host, false) && !ours_host(a, f.host)) {
			*ret = (uint16_t)f.host;
			return 0;
		}
	}
	return -1;
}

int autofwd_report(struct autofwd *a, struct qmp *q, const void *payload, size_t len, char *const *static_fw,
		   void (*log)(const char *line))
{
	static uint16_t ports[PROTO_LISTENERS_MAX];
	uint32_t flags;
	size_t n;
	if (!a->on)
		return 0;
	if (proto_decode_listeners(payload, len, &flags, ports, &n) < 0)
		return -1;
	struct hutch_error err = {0};
	char line[128];
	/* gone first, so their slots count for the new ones */
	for (size_t i = 0; i < a->n;) {
		if (reported(ports, n, a->fw[i].guest)) {
			i++;
			continue;
		}
		snprintf(line, sizeof(line), "hostfwd_remove net0 tcp:127.0.0.1:%u", a->fw[i].host);
		if (qmp_hmp(q, line, 5000, &err) < 0) {
			logf_(log, "auto_forward: removing 127.0.0.1:%u: %s", a->fw[i].host, err.msg);
			hutch_error_clear(&err);
		} else {
			logf_(log, "auto_forward: guest port %u closed: 127.0.0.1:%u removed", a->fw[i].guest,
			      a->fw[i].host);
		}
		a->fw[i] = a->fw[--a->n];
	}
	size_t skipped = 0;
	for (size_t k = 0; k < n; k++) {
		bool have = static_uses(static_fw, ports[k], true);
		for (size_t i = 0; i < a->n && !have; i++)
			have = a->fw[i].guest == ports[k];
		if (have)
			continue;
		if (a->n >= a->max) {
			skipped++;
			continue;
		}
		uint16_t host;
		if (pick_host(a, static_fw, ports[k], &host) < 0) {
			logf_(log, "auto_forward: no free host port for guest port %u", ports[k]);
			continue;
		}
		snprintf(line, sizeof(line), "hostfwd_add net0 tcp:127.0.0.1:%u-:%u", host, ports[k]);
		if (qmp_hmp(q, line, 5000, &err) < 0) {
			logf_(log, "auto_forward: guest port %u: %s", ports[k], err.msg);
			hutch_error_clear(&err);
			continue;
		}
		a->fw = xrealloc(a->fw, (a->n + 1) * sizeof(*a->fw));
		a->fw[a->n++] = (struct autofwd_entry){ports[k], host};
		logf_(log, "auto_forward: guest port %u is forwarded from 127.0.0.1:%u", ports[k], host);
	}
	bool capped = skipped || (flags & PROTO_LISTENERS_TRUNCATED);
	if (capped && !a->capped)
		logf_(log,
		      "auto_forward: the guest listens on more ports than auto_forward_max (%zu) allows; %zu not forwarded",
		      a->max, skipped);
	a->capped = capped;
	return 0;
}

void autofwd_list(const struct autofwd *a, json_object *forwards, json_object *origins)
{
	for (size_t i = 0; i < a->n; i++) {
		char s[32];
		snprintf(s, sizeof(s), "%u:%u/tcp", a->fw[i].host, a->fw[i].guest);
		json_object_array_add(forwards, json_object_new_string(s));
		json_object_array_add(origins, json_object_new_string("auto"));
	}
}

void autofwd_setup(struct autofwd *a, struct store *st, const struct vm_spec *s)
{
	struct hutch_config cfg;
	long long max = 0;
	if (config_load(st, &cfg, NULL) == 0) {
		max = cfg.auto_forward_max;
		config_release(&cfg);
	}
	autofwd_init(a, s->auto_forward && s->net_mode == NET_USER, max);
}
