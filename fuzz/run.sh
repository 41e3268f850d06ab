#!/bin/sh
# Build every fuzz/fuzz_*.c as a libFuzzer target (ASan + UBSan) in build-fuzz/, run each for
# FUZZ_SECONDS on a scratch copy of its seed corpus, print execs and coverage, and fail if any
# target crashed (the crash input's path is printed).
#
#   fuzz/run.sh                 all targets, FUZZ_SECONDS (default 60) each
#   fuzz/run.sh proto size      only these targets
#   FUZZ_BUILD_ONLY=1 fuzz/run.sh
#   FUZZ_ARGS='-max_len=65536' fuzz/run.sh   extra libFuzzer flags
set -eu

cd "$(dirname "$0")/.."
CC=${CC:-clang-14}
SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
OUT=build-fuzz

# The library sources each target links. A target not listed here gets every src/lib/*.c and
# src/proto/proto.c, which needs all of the project's libraries.
sources_for() {
	case "$1" in
	fuzz_spec) echo src/lib/spec.c src/lib/util.c ;;
	fuzz_qmp) echo src/lib/qmp.c src/lib/util.c ;;
	fuzz_proto) echo src/proto/proto.c ;;
	fuzz_size) echo src/lib/util.c ;;
	fuzz_sums) echo src/lib/image.c src/lib/util.c src/lib/store.c src/lib/spec.c ;;
	*) echo src/lib/*.c src/proto/proto.c ;;
	esac
}

pkgs="yaml-0.1 json-c libarchive libcrypto libcurl"
# shellcheck disable=SC2086 # $pkgs is a list
PKG_CFLAGS=$(pkg-config --cflags $pkgs 2>/dev/null || echo -I/usr/include/json-c)
# shellcheck disable=SC2086
PKG_LIBS=$(pkg-config --libs $pkgs 2>/dev/null || echo -lyaml -ljson-c -larchive -lcrypto -lcurl)
CFLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -D_GNU_SOURCE"
CFLAGS="$CFLAGS -Isrc/lib -Isrc/proto -Isrc $PKG_CFLAGS"

if ! command -v "$CC" >/dev/null 2>&1; then
	echo "fuzz: $CC not found (set CC to a clang with libFuzzer)" >&2
	exit 2
fi

if [ $# -gt 0 ]; then
	targets=$(for t in "$@"; do echo "fuzz_${t#fuzz_}"; done)
else
	targets=$(for f in fuzz/fuzz_*.c; do basename "$f" .c; done)
fi

mkdir -p "$OUT"
failed=""
summary=""
for t in $targets; do
	src=fuzz/$t.c
	if [ ! -f "$src" ]; then
		echo "fuzz: no such target '$src'" >&2
		exit 2
	fi
	echo "== $t: building"
	# shellcheck disable=SC2046,SC2086 # the source list and flags are word lists
	if ! $CC $CFLAGS -o "$OUT/$t" "$src" $(sources_for "$t") $PKG_LIBS 2>"$OUT/$t.build.log"; then
		cat "$OUT/$t.build.log" >&2
		echo "fuzz: $t failed to build (add it to sources_for in fuzz/run.sh?)" >&2
		exit 2
	fi
	[ -n "${FUZZ_BUILD_ONLY:-}" ] && continue

	name=${t#fuzz_}
	work="$OUT/work/$name"
	artifacts="$OUT/artifacts/$name"
	rm -rf "$work"
	mkdir -p "$work" "$artifacts"
	if [ -d "fuzz/corpus/$name" ]; then
		cp -R "fuzz/corpus/$name/." "$work/"
	fi
	log="$OUT/$t.log"
	echo "== $t: running ${SECONDS_PER_TARGET}s (log: $log)"
	rc=0
	# shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
	"./$OUT/$t" -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 -timeout=25 \
		-artifact_prefix="$artifacts/" ${FUZZ_ARGS:-} "$work" >"$log" 2>&1 || rc=$?

	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	cov=$(grep -E '^#[0-9]+' "$log" | grep -o 'cov: [0-9]*' | tail -n 1 | cut -d' ' -f2)
	ft=$(grep -E '^#[0-9]+' "$log" | grep -o 'ft: [0-9]*' | tail -n 1 | cut -d' ' -f2)
	corp=$(find "$work" -type f | wc -l)
	if [ "$rc" -ne 0 ]; then
		crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
		echo "!! $t CRASHED (exit $rc): ${crash:-see $log}"
		grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|.*check failed)' "$log" | head -n 5 || true
		failed="$failed $t"
		result="CRASH ${crash:-}"
	else
		result=ok
	fi
	line=$(printf '| %-11s | %10s | %6s | %6s | %6s | %s |' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" \
		"$corp" "$result")
	echo "$line"
	summary="$summary$line
"
done

[ -n "${FUZZ_BUILD_ONLY:-}" ] && exit 0
echo
echo "Results (${SECONDS_PER_TARGET}s each):"
echo "| target      |      execs |    cov |     ft | corpus | result |"
echo "|-------------|------------|--------|--------|--------|--------|"
printf '%s' "$summary"
if [ -n "$failed" ]; then
	echo "fuzz: crashed:$failed" >&2
	exit 1
fi
