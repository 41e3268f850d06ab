/* The balloon policy: pure, no I/O (balloon_policy.h says what it does). */
#include "balloon_policy.h"

#include <stdio.h>

#define MIB (1ULL << 20)

void balloon_knobs_default(struct balloon_knobs *k)
{
	*k = (struct balloon_knobs){
		.poll_ms = 2000,
		.min_poll_ms = 250,
		.psi_ceiling = 25,
		.critical_host_percent = 5,
		.critical_guest_available = 256 * MIB,
		.guest_available_bias = 400 * MIB,
	};
}

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }
static uint64_t max_u64(uint64_t a, uint64_t b) { return a > b ? a : b; }

uint64_t balloon_floor(const struct balloon_knobs *k, const struct balloon_input *in)
{
	uint64_t f = in->floor ? in->floor : k->critical_guest_available;
	return min_u64(f, in->max);
}

/* 0 at no pressure, 1 at the ceiling or beyond. */
static double pressure_level(const struct balloon_knobs *k, const struct balloon_input *in, bool *host_critical)
{
	*host_critical = in->host_total && in->host_available < in->host_total / 100 * k->critical_host_percent;
	double p = k->psi_ceiling ? in->psi_avg10 / k->psi_ceiling : (in->psi_avg10 > 0);
	if (p > 1)
		p = 1;
	if (p < 0)
		p = 0;
	return *host_critical ? 1 : p;
}

static void hold(struct balloon_decision *d, const struct balloon_input *in, const char *why)
{
	d->action = BALLOON_HOLD;
	d->target = in->actual;
	snprintf(d->reason, sizeof(d->reason), "%s", why);
}

static void move(struct balloon_decision *d, const struct balloon_input *in, uint64_t target, const char *why)
{
	uint64_t diff = target > in->actual ? target - in->actual : in->actual - target;
	if (diff == 0 || (diff < BALLOON_STEP_MIN && target != in->max)) {
		hold(d, in, why);
		return;
	}
	d->action = target < in->actual ? BALLOON_INFLATE : target > in->actual ? BALLOON_DEFLATE : BALLOON_HOLD;
	d->target = target;
	snprintf(d->reason, sizeof(d->reason), "%s", why);
}

void balloon_decide(const struct balloon_knobs *k, const struct balloon_input *in, struct balloon_decision *ret)
{
	struct balloon_decision d = {0};
	bool critical;
	double p = pressure_level(k, in, &critical);
	d.next_poll_ms =
		k->poll_ms - (uint64_t)((double)(k->poll_ms > k->min_poll_ms ? k->poll_ms - k->min_poll_ms : 0) * p);
	uint64_t floor = balloon_floor(k, in);
	uint64_t inflated = in->max > in->actual ? in->max - in->actual : 0;
	double fullness = in->max > floor ? (double)inflated / (double)(in->max - floor) : 1;
	uint64_t need = k->critical_guest_available +
			(uint64_t)((double)k->guest_available_bias * (fullness > 1 ? 1 : fullness));

	if (in->have_stats && in->guest_available < k->critical_guest_available && in->actual < in->max) {
		/* the guest is short: give back what brings it to its cushion */
		uint64_t give = need - in->guest_available;
		move(&d, in, min_u64(in->actual + give, in->max), "the guest is short of memory: deflating");
	} else if (p <= 0) {
		move(&d, in, in->max, in->actual < in->max ? "no host pressure: deflating" : "no host pressure");
	} else if (!in->have_stats) {
		hold(&d, in, "host pressure, but the guest reports no memory statistics yet");
	} else if (in->actual <= floor) {
		hold(&d, in, "host pressure; the guest is at its floor");
	} else if (in->guest_available <= need) {
		hold(&d, in, "host pressure; the guest has no memory to spare beyond its cushion");
	} else {
		uint64_t headroom = in->guest_available - need;
		/* at least a quarter of the headroom at any pressure, all of it at the ceiling */
		double share = 0.25 + 0.75 * p;
		uint64_t give = (uint64_t)((double)headroom * share);
		uint64_t target = max_u64(in->actual > give ? in->actual - give : 0, floor);
		char why[160];
		snprintf(why, sizeof(why), "host pressure (%s%.1f%% PSI): reclaiming %llu MiB of %llu MiB headroom",
			 critical ? "MemAvailable critical, " : "", in->psi_avg10,
			 (unsigned long long)((in->actual - target) / MIB), (unsigned long long)(headroom / MIB));
		move(&d, in, target, why);
	}
	*ret = d;
}
