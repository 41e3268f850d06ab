/* libFuzzer target for the checked number parsers: parse_size, parse_duration_ms, parse_ll.
 *
 * Each parser is compared with a plain reference written from its documented grammar (a digit
 * string, overflow checked in 128 bits, then an exact suffix), on a NUL-terminated copy of the
 * input. Whatever parse_size accepts, format_size prints, and an exact print parses back. */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "util.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef unsigned __int128 u128;

struct unit {
	const char *suffix;
	uint64_t mult;
};

static const struct unit size_units[] = {
	{"", 1},	   {"B", 1},	       {"K", 1ull << 10},
	{"k", 1ull << 10}, {"KB", 1ull << 10}, {"KiB", 1ull << 10},
	{"M", 1ull << 20}, {"MB", 1ull << 20}, {"MiB", 1ull << 20},
	{"G", 1ull << 30}, {"GB", 1ull << 30}, {"GiB", 1ull << 30},
	{"T", 1ull << 40}, {"TB", 1ull << 40}, {"TiB", 1ull << 40},
};

static const struct unit duration_units[] = {
	{"", 1000}, {"s", 1000}, {"ms", 1}, {"m", 60000}, {"min", 60000}, {"h", 3600000},
};

/* Leading decimal digits, saturating just above UINT64_MAX. */
static const char *ref_digits(const char *s, u128 *ret)
{
	u128 v = 0, cap = (u128)UINT64_MAX + 1;
	for (; *s >= '0' && *s <= '9'; s++) {
		v = v * 10 + (u128)(*s - '0');
		if (v > cap)
			v = cap;
	}
	*ret = v;
	return s;
}

static int ref_unsigned(const char *s, const struct unit *units, size_t n_units, uint64_t *ret)
{
	if (!(*s >= '0' && *s <= '9'))
		return -EINVAL;
	u128 v;
	const char *end = ref_digits(s, &v);
	if (v > UINT64_MAX)
		return -ERANGE;
	for (size_t i = 0; i < n_units; i++) {
		if (strcmp(end, units[i].suffix))
			continue;
		u128 r = v * units[i].mult;
		if (r > UINT64_MAX)
			return -ERANGE;
		*ret = (uint64_t)r;
		return 0;
	}
	return -EINVAL;
}

static int ref_ll(const char *s, long long min, long long max, long long *ret)
{
	const char *p = s;
	bool neg = false;
	if (*p == '+' || *p == '-')
		neg = *p++ == '-';
	if (!(*p >= '0' && *p <= '9'))
		return -EINVAL;
	u128 v;
	const char *end = ref_digits(p, &v);
	if (v > (neg ? (u128)LLONG_MAX + 1 : (u128)LLONG_MAX))
		return -ERANGE;
	if (*end)
		return -EINVAL;
	long long r = neg ? (long long)(0 - (uint64_t)v) : (long long)v;
	if (r < min || r > max)
		return -ERANGE;
	*ret = r;
	return 0;
}

static void check_size(const char *s)
{
	uint64_t got = 0xdead, want = 0xbeef;
	int r = parse_size(s, &got), rr = ref_unsigned(s, size_units, ARRAY_SIZE(size_units), &want);
	CHECK(r == rr);
	if (r < 0) {
		CHECK(got == 0xdead);
		return;
	}
	CHECK(got == want);

	char buf[32];
	format_size(got, buf, sizeof(buf));
	CHECK(buf[0] >= '0' && buf[0] <= '9');
	if (!strchr(buf, '.') && !strchr(buf, 'P')) {
		uint64_t back = 0;
		CHECK(parse_size(buf, &back) == 0 && back == got);
	}
}

static void check_duration(const char *s)
{
	uint64_t got = 0xdead, want = 0xbeef;
	int r = parse_duration_ms(s, &got), rr = ref_unsigned(s, duration_units, ARRAY_SIZE(duration_units), &want);
	CHECK(r == rr);
	CHECK(r < 0 ? got == 0xdead : got == want);
}

static void check_ll(const char *s, long long min, long long max)
{
	long long got = 0xdead, want = 0xbeef;
	int r = parse_ll(s, min, max, &got), rr = ref_ll(s, min, max, &want);
	CHECK(r == rr);
	CHECK(r < 0 ? got == 0xdead : got == want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = 0;
	check_size(s);
	check_duration(s);
	check_ll(s, LLONG_MIN, LLONG_MAX);
	check_ll(s, 1, 65535);
	check_ll(s, -10, 0);
	free(s);
	return 0;
}
