/* The monitor's side of the balloon: it polls host pressure (PSI memory avg10, MemAvailable) and the
 * guest's balloon statistics (QMP qom-get guest-stats), asks the policy (balloon_policy.h) for a
 * target and sets it with QMP balloon. `hutch balloon NAME` reads it and sets manual targets.
 *
 * Host readings: HUTCH_PSI_FILE (tests only) in place of /proc/pressure/memory, and /proc/meminfo
 * under HUTCH_PROC_ROOT. */
#pragma once
#include "balloon_policy.h"
#include "qmp.h"
#include "spec.h"
#include "store.h"

struct mon_balloon {
	bool on; /* the VM has a balloon (not with balloon: false, nor in a warm clone) */
	struct balloon_knobs k;
	uint64_t max, floor;
	uint64_t next_at; /* monotonic ms of the next poll */
	bool stats_armed; /* guest-stats-polling-interval is set */
	bool manual;	  /* a target set by hand holds until 'auto' */
	uint64_t manual_target;
	/* the last readings and decision */
	uint64_t actual, target;
	bool have_stats;
	uint64_t guest_available, guest_free;
	double psi;
	uint64_t host_available, host_total;
	char reason[160];
	int64_t decided_at; /* wall clock s */
	uint64_t next_poll_ms;
	char error[160]; /* the last QMP failure, "" when none */
};

/* The knobs come from config.yml (reference 004's defaults when it has none, or is broken). */
void mon_balloon_init(struct mon_balloon *b, const struct store *st, const struct vm_spec *s, char *const *argv);
/* UINT64_MAX when off. */
uint64_t mon_balloon_deadline(const struct mon_balloon *b);
void mon_balloon_tick(struct mon_balloon *b, struct qmp *q, uint64_t now);
/* The CLI's "balloon" request: {"op":"balloon"} reads; {"target": BYTES | "auto"} sets. A reply. */
json_object *mon_balloon_request(struct mon_balloon *b, struct qmp *q, json_object *req);

/* Host readings, exposed for tests: PSI "some avg10" of a pressure file, and MemAvailable/MemTotal. */
int balloon_read_psi(const char *path, double *ret);
int balloon_read_meminfo(const char *path, uint64_t *ret_available, uint64_t *ret_total);
