/* accel-bench: what deciding on KVM costs a start once the verdict is cached, against the floor of
 * the check it replaces (open and close /dev/kvm). For bench/accel.sh; prints one JSON line.
 *   accel-bench [N]   (default 2000 rounds of each; HUTCH_HOME as for hutch) */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "store.h"

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

int main(int argc, char **argv)
{
	long long n = 2000;
	if (argc > 1 && parse_ll(argv[1], 1, 10000000, &n) < 0) {
		fprintf(stderr, "usage: accel-bench [N]\n");
		return 2;
	}
	struct store st;
	struct hutch_error err = {0};
	if (store_open(&st, &err) < 0) {
		fprintf(stderr, "accel-bench: %s\n", err.msg);
		return 1;
	}
	struct accel_result r;
	/* one round first: a verdict must be cached already (bench/accel.sh probes before) */
	if (store_accel(&st, NULL, ACCEL_AUTO, PLAN_MONITOR, false, &r, &err) < 0) {
		fprintf(stderr, "accel-bench: %s\n", err.msg);
		return 1;
	}
	bool cached = r.have_verdict;
	uint64_t t0 = now_ns();
	for (long long i = 0; i < n; i++)
		if (store_accel(&st, NULL, ACCEL_AUTO, PLAN_MONITOR, false, &r, &err) < 0)
			return 1;
	uint64_t t1 = now_ns();
	for (long long i = 0; i < n; i++) {
		int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
		if (fd >= 0)
			close(fd);
	}
	uint64_t t2 = now_ns();
	printf("{\"rounds\": %lld, \"cached_verdict\": %s, \"kvm\": %s, \"resolve_us\": %.1f, \"open_us\": %.1f}\n", n,
	       cached ? "true" : "false", r.info.kvm ? "true" : "false", (double)(t1 - t0) / (double)n / 1000.0,
	       (double)(t2 - t1) / (double)n / 1000.0);
	store_release(&st);
	return 0;
}
