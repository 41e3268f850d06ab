/* The memory balloon's policy (reference 004's vmsilo-balloond): a pure function from host pressure
 * and one guest's memory to that guest's next balloon target. The monitor feeds it (monitor_balloon.c);
 * tests feed it tables.
 *
 * - Host pressure is PSI memory avg10 above zero, or MemAvailable under critical_host_percent of RAM.
 *   Under it a guest gives back a share of its headroom (what it has available beyond its floor), the
 *   share growing with the pressure: the guests with the most headroom give the most.
 * - A guest keeps at least critical_guest_available available, plus guest_available_bias scaled by how
 *   full the balloon is, and its memory never goes below its floor (balloon.min).
 * - A guest short of memory (under the critical line) gets memory back whatever the host says.
 * - Without pressure the balloon deflates: the guest gets its whole memory back.
 * - It polls faster under pressure: poll_ms at no pressure down to min_poll_ms at psi_ceiling. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

struct balloon_knobs {
	uint64_t poll_ms;		   /* poll_interval: 2s */
	uint64_t min_poll_ms;		   /* min_poll_interval: 250ms */
	unsigned psi_ceiling;		   /* psi_ceiling: 25 (avg10 %) */
	unsigned critical_host_percent;	   /* critical_host_percent: 5 */
	uint64_t critical_guest_available; /* critical_guest_available: 256M */
	uint64_t guest_available_bias;	   /* guest_available_bias: 400M */
};

void balloon_knobs_default(struct balloon_knobs *k);

struct balloon_input {
	double psi_avg10;	 /* host: /proc/pressure/memory "some avg10" */
	uint64_t host_available; /* host MemAvailable, bytes */
	uint64_t host_total;	 /* host MemTotal, bytes */
	uint64_t max;		 /* the guest's memory: */
	uint64_t floor;		 /* balloon.min, or 0 */
	uint64_t actual;	 /* what the guest has now (max minus the balloon) */
	bool have_stats;	 /* the guest reported its available memory */
	uint64_t guest_available;
};

enum balloon_action { BALLOON_HOLD = 0, BALLOON_INFLATE, BALLOON_DEFLATE };

struct balloon_decision {
	enum balloon_action action;
	uint64_t target; /* the guest's memory to ask for; == actual on HOLD */
	uint64_t next_poll_ms;
	char reason[160];
};

/* Changes smaller than this are not worth a request. */
#define BALLOON_STEP_MIN (16ULL << 20)

void balloon_decide(const struct balloon_knobs *k, const struct balloon_input *in, struct balloon_decision *ret);
/* The floor the policy enforces: balloon.min, else what critical_guest_available needs. */
uint64_t balloon_floor(const struct balloon_knobs *k, const struct balloon_input *in);
