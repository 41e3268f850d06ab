/* The balloon policy as a table: host pressure and a guest's memory in, the target out. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "balloon_policy.h"
#include "config.h"
#include "monitor_balloon.h"

#define UNUSED __attribute__((unused))
#define M (1ULL << 20)
#define G (1ULL << 30)

struct row {
	const char *name;
	double psi;
	uint64_t host_avail, host_total;
	uint64_t max, floor, actual;
	bool stats;
	uint64_t guest_avail;
	enum balloon_action action;
	uint64_t target;
	uint64_t poll_ms;
	const char *reason;
};

/* Defaults: poll 2000..250 ms over PSI 0..25, critical host 5%, guest critical 256M, bias 400M. */
static const struct row rows[] = {
	{"idle host, full guest: nothing to do", 0, 20 * G, 24 * G, 2 * G, 0, 2 * G, true, 1500 * M, BALLOON_HOLD,
	 2 * G, 2000, "no host pressure"},
	{"idle host, inflated guest: deflate to max", 0, 20 * G, 24 * G, 2 * G, 0, 1 * G, true, 600 * M,
	 BALLOON_DEFLATE, 2 * G, 2000, "no host pressure: deflating"},
	/* PSI 25 (the ceiling): all of the headroom. need = 256M + 400M * 0 = 256M; headroom 1500-256 = 1244M */
	{"full pressure, empty balloon: all headroom", 25, 20 * G, 24 * G, 2 * G, 512 * M, 2 * G, true, 1500 * M,
	 BALLOON_INFLATE, 2 * G - 1244 * M, 250, "host pressure"},
	/* the floor wins over the headroom */
	{"full pressure, the floor stops it", 25, 20 * G, 24 * G, 2 * G, 1 * G, 2 * G, true, 1500 * M, BALLOON_INFLATE,
	 1 * G, 250, "host pressure"},
	{"pressure at the floor: hold", 25, 20 * G, 24 * G, 2 * G, 1 * G, 1 * G, true, 800 * M, BALLOON_HOLD, 1 * G,
	 250, "at its floor"},
	/* PSI 5: share = 0.25 + 0.75 * 0.2 = 0.4; fullness 0 -> need 256M; headroom 1000-256 = 744M -> 297.6M */
	{"light pressure: a share of the headroom", 5, 20 * G, 24 * G, 2 * G, 0, 2 * G, true, 1000 * M, BALLOON_INFLATE,
	 2 * G - (uint64_t)(744 * M * 0.4), 1650, "host pressure"},
	/* half inflated (fullness (2G-1.25G)/(2G-0.5G) = 0.5): need 256M + 200M = 456M > 400M available */
	{"the cushion grows with the balloon", 25, 20 * G, 24 * G, 2 * G, 512 * M, 1280 * M, true, 400 * M,
	 BALLOON_HOLD, 1280 * M, 250, "no memory to spare"},
	{"no stats yet: no inflation", 25, 20 * G, 24 * G, 2 * G, 0, 2 * G, false, 0, BALLOON_HOLD, 2 * G, 250,
	 "no memory statistics"},
	/* MemAvailable under 5% of RAM is pressure at full strength, even with PSI 0 */
	{"MemAvailable critical", 0, 1 * G, 24 * G, 2 * G, 0, 2 * G, true, 1256 * M, BALLOON_INFLATE, 2 * G - 1000 * M,
	 250, "MemAvailable critical"},
	/* the guest is short (200M < 256M) while the host is under pressure: it still gets memory.
	 * fullness (2G-1G)/(2G-256M) = 0.5714...; need = 256M + 400M*0.5714 = 484.57M; give 284.57M */
	{"a guest short of memory is deflated under pressure", 25, 20 * G, 24 * G, 2 * G, 0, 1 * G, true, 200 * M,
	 BALLOON_DEFLATE, 1 * G + (256 * M + (uint64_t)(400.0 * M * (1024.0 / 1792.0))) - 200 * M, 250,
	 "short of memory"},
	/* a step below 16 MiB is not worth a request */
	{"tiny step: hold", 25, 20 * G, 24 * G, 2 * G, 0, 2 * G, true, 266 * M, BALLOON_HOLD, 2 * G, 250,
	 "host pressure"},
	{"tiny final deflate still goes to max", 0, 20 * G, 24 * G, 2 * G, 0, 2 * G - 4 * M, true, 1 * G,
	 BALLOON_DEFLATE, 2 * G, 2000, "deflating"},
	/* PSI above the ceiling is the ceiling */
	{"psi above the ceiling", 90, 20 * G, 24 * G, 2 * G, 512 * M, 2 * G, true, 1500 * M, BALLOON_INFLATE,
	 2 * G - 1244 * M, 250, "host pressure"},
	/* a floor above memory means the whole memory */
	{"floor above memory", 25, 20 * G, 24 * G, 1 * G, 2 * G, 1 * G, true, 900 * M, BALLOON_HOLD, 1 * G, 250,
	 "at its floor"},
};

static void test_table(void **state UNUSED)
{
	struct balloon_knobs k;
	balloon_knobs_default(&k);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		struct balloon_input in = {.psi_avg10 = r->psi,
					   .host_available = r->host_avail,
					   .host_total = r->host_total,
					   .max = r->max,
					   .floor = r->floor,
					   .actual = r->actual,
					   .have_stats = r->stats,
					   .guest_available = r->guest_avail};
		struct balloon_decision d;
		balloon_decide(&k, &in, &d);
		int64_t off = (int64_t)d.target - (int64_t)r->target;
		if (d.action != r->action || off > 1024 || off < -1024 || d.next_poll_ms != r->poll_ms ||
		    !strstr(d.reason, r->reason))
			fail_msg("%s: got action %d target %llu poll %llu reason '%s'; want %d %llu %llu '%s'", r->name,
				 d.action, (unsigned long long)d.target, (unsigned long long)d.next_poll_ms, d.reason,
				 r->action, (unsigned long long)r->target, (unsigned long long)r->poll_ms, r->reason);
		/* never below the floor, never above memory */
		assert_true(d.target >= balloon_floor(&k, &in) || d.action == BALLOON_HOLD);
		assert_true(d.target <= in.max);
	}
}

/* Repeated under pressure, the policy converges and stays above floor and cushion. */
static void test_converges(void **state UNUSED)
{
	struct balloon_knobs k;
	balloon_knobs_default(&k);
	struct balloon_input in = {.psi_avg10 = 40,
				   .host_available = 20 * G,
				   .host_total = 24 * G,
				   .max = 2 * G,
				   .floor = 768 * M,
				   .actual = 2 * G,
				   .have_stats = true};
	uint64_t used = 300 * M; /* what the guest uses; available = actual - used */
	for (int i = 0; i < 50; i++) {
		in.guest_available = in.actual - used;
		struct balloon_decision d;
		balloon_decide(&k, &in, &d);
		in.actual = d.target;
		assert_true(in.actual >= 768 * M);
	}
	assert_true(in.actual < 2 * G);
	assert_true(in.actual - used >= k.critical_guest_available);
	/* pressure gone: back to max */
	in.psi_avg10 = 0;
	in.guest_available = in.actual - used;
	struct balloon_decision d;
	balloon_decide(&k, &in, &d);
	assert_int_equal(d.action, BALLOON_DEFLATE);
	assert_int_equal(d.target, 2 * G);
}

/* The knobs in config.yml: reference 004's defaults, overrides, and errors naming file:line: key. */
static void test_config(void **state UNUSED)
{
	struct hutch_config c;
	assert_int_equal(config_parse_buffer("", 0, "config.yml", &c, NULL), 0);
	assert_int_equal(c.balloon.poll_ms, 2000);
	assert_int_equal(c.balloon.min_poll_ms, 250);
	assert_int_equal(c.balloon.psi_ceiling, 25);
	assert_int_equal(c.balloon.critical_host_percent, 5);
	assert_int_equal(c.balloon.critical_guest_available, 256 * M);
	assert_int_equal(c.balloon.guest_available_bias, 400 * M);
	config_release(&c);
	const char *y = "balloon:\n  poll_interval: 5s\n  psi_ceiling: 40\n  guest_available_bias: 1G\n";
	assert_int_equal(config_parse_buffer(y, strlen(y), "config.yml", &c, NULL), 0);
	assert_int_equal(c.balloon.poll_ms, 5000);
	assert_int_equal(c.balloon.psi_ceiling, 40);
	assert_int_equal(c.balloon.guest_available_bias, 1 * G);
	assert_int_equal(c.balloon.min_poll_ms, 250);
	config_release(&c);
	static const struct {
		const char *y, *want;
	} bad[] = {
		{"balloon:\n  poll: 1s\n", "config.yml:2: balloon.poll: unknown key"},
		{"balloon:\n  psi_ceiling: 0\n", "config.yml:2: balloon.psi_ceiling"},
		{"balloon:\n  poll_interval: 1s\n  min_poll_interval: 2s\n",
		 "config.yml:2: balloon: min_poll_interval must not exceed"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct hutch_error err = {0};
		assert_true(config_parse_buffer(bad[i].y, strlen(bad[i].y), "config.yml", &c, &err) < 0);
		if (strncmp(err.msg, bad[i].want, strlen(bad[i].want)))
			fail_msg("got '%s', want '%s'", err.msg, bad[i].want);
		hutch_error_clear(&err);
	}
}

/* The host readings: PSI's "some avg10" and /proc/meminfo. */
static void test_host_readings(void **state UNUSED)
{
	char dir[] = "/tmp/hutch-test-balloon.XXXXXX";
	assert_non_null(mkdtemp(dir));
	_cleanup_free_ char *psi = xasprintf("%s/psi", dir), *mi = xasprintf("%s/meminfo", dir);
	const char *p = "some avg10=12.50 avg60=3.00 avg300=1.00 total=99\nfull avg10=80.00 avg60=0 avg300=0 total=1\n";
	assert_int_equal(write_file_atomic(psi, p, strlen(p), 0644, NULL), 0);
	double v = -1;
	assert_int_equal(balloon_read_psi(psi, &v), 0);
	assert_true(v > 12.49 && v < 12.51);
	const char *q = "full avg10=1.00\n";
	assert_int_equal(write_file_atomic(psi, q, strlen(q), 0644, NULL), 0);
	assert_int_equal(balloon_read_psi(psi, &v), -EINVAL);
	const char *m = "MemTotal:       24683520 kB\nMemFree:        21000000 kB\nMemAvailable:   23000000 kB\n";
	assert_int_equal(write_file_atomic(mi, m, strlen(m), 0644, NULL), 0);
	uint64_t av, tot;
	assert_int_equal(balloon_read_meminfo(mi, &av, &tot), 0);
	assert_int_equal(tot, 24683520ULL * 1024);
	assert_int_equal(av, 23000000ULL * 1024);
	rm_rf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_converges),
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_host_readings),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
