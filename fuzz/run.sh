#!/bin/bash
# Build every fuzz/fuzz_*.c as a libFuzzer target (ASan + UBSan) in build-fuzz/, run each for
# FUZZ_SECONDS on a scratch copy of its seed corpus, print execs and coverage, and fail if any
# target crashed (the crash input's path is printed).
#
#   fuzz/run.sh                 all targets, FUZZ_SECONDS (default 60) each
#   fuzz/run.sh proto size      only these targets
#   FUZZ_BUILD_ONLY=1 fuzz/run.sh
#   FUZZ_ARGS='-max_len=65536' fuzz/run.sh   extra libFuzzer flags
#   FUZZ_JOBS=2 fuzz/run.sh     run two targets at a time (one core each)
#
# The table reports each target's CPU seconds beside its wall-clock budget, so a run on a busy
# machine cannot pass for a longer one.
set -eu

cd "$(dirname "$0")/.."
CC=${CC:-clang-14}
SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
OUT=build-fuzz

# The library sources each target links. A target not listed here gets every src/lib/*.c and
# src/proto/proto.c, which needs all of the project's libraries.
sources_for() {
	case "$1" in
	fuzz_spec) echo src/lib/spec.c src/lib/ytree.c src/lib/accel.c src/lib/accel_probe.c src/lib/qemu.c src/lib/netvm.c src/lib/config.c src/lib/spec_desktop.c src/lib/color.c src/lib/desktop_qemu.c src/lib/unixsock.c src/lib/store.c src/proto/proto.c src/lib/util.c src/lib/lazylib.c src/lib/shares.c src/lib/client.c ;;
	fuzz_config) echo src/lib/config.c src/lib/spec.c src/lib/ytree.c src/lib/accel.c src/lib/accel_probe.c src/lib/qemu.c src/lib/netvm.c src/lib/spec_desktop.c src/lib/color.c src/lib/desktop_qemu.c src/lib/unixsock.c src/lib/store.c src/proto/proto.c src/lib/util.c src/lib/lazylib.c src/lib/shares.c src/lib/client.c ;;
	fuzz_qmp) echo src/lib/qmp.c src/lib/util.c src/lib/lazylib.c ;;
	fuzz_proto) echo src/proto/proto.c ;;
	fuzz_listeners) echo src/proto/proto.c src/proto/listeners.c ;;
	fuzz_notify) echo src/proto/proto.c src/proto/notification.c src/lib/notify.c src/lib/util.c src/lib/lazylib.c ;;
	fuzz_size) echo src/lib/util.c src/lib/lazylib.c ;;
	fuzz_desktop_entry) echo src/lib/desktop_entry.c src/lib/spec_desktop.c src/lib/color.c src/lib/ytree.c src/lib/util.c src/lib/lazylib.c ;;
	fuzz_oci_index | fuzz_oci_manifest | fuzz_oci_config) echo src/lib/oci.c src/lib/util.c src/lib/lazylib.c ;;
	fuzz_oci_login) echo src/lib/oci_login.c src/lib/util.c src/lib/lazylib.c ;;
	fuzz_sums) echo src/lib/image_fetch.c src/lib/image_cache.c src/lib/util.c src/lib/spec.c src/lib/ytree.c src/lib/accel.c src/lib/accel_probe.c src/lib/qemu.c src/lib/netvm.c src/lib/config.c src/lib/spec_desktop.c src/lib/color.c src/lib/desktop_qemu.c src/lib/unixsock.c src/lib/store.c src/proto/proto.c src/lib/lazylib.c src/lib/shares.c src/lib/client.c ;;
	*) echo src/lib/*.c src/proto/proto.c ;;
	esac
}

pkgs="yaml-0.1 json-c libarchive libcrypto libcurl libpng"
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
done
[ -n "${FUZZ_BUILD_ONLY:-}" ] && exit 0

# run_target T: fuzz T for the budget and write its table row to $OUT/T.row (a leading "!" marks
# a crash).
run_target() {
	local t=$1 name work artifacts log rc execs cov ft corp cpu crash result
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
	local f start_cpu
	read -ra f <"/proc/$BASHPID/stat" # cutime and cstime: CPU of this subshell's reaped children
	start_cpu=$((f[15] + f[16]))
	# shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
	"./$OUT/$t" -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 -timeout=25 \
		-artifact_prefix="$artifacts/" ${FUZZ_ARGS:-} "$work" >"$log" 2>&1 || rc=$?
	read -ra f <"/proc/$BASHPID/stat"
	cpu=$(((f[15] + f[16] - start_cpu) / $(getconf CLK_TCK)))

	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	cov=$(grep -E '^#[0-9]+' "$log" | grep -o 'cov: [0-9]*' | tail -n 1 | cut -d' ' -f2)
	ft=$(grep -E '^#[0-9]+' "$log" | grep -o 'ft: [0-9]*' | tail -n 1 | cut -d' ' -f2)
	corp=$(find "$work" -type f | wc -l)
	if [ "$rc" -ne 0 ]; then
		crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
		echo "!! $t CRASHED (exit $rc): ${crash:-see $log}"
		grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|.*check failed)' "$log" | head -n 5 || true
		result="CRASH ${crash:-}"
		printf '!' >"$OUT/$t.row"
	else
		result=ok
		: >"$OUT/$t.row"
	fi
	printf '| %-11s | %7s | %12s | %6s | %6s | %6s | %s |\n' "$t" "$cpu" "${execs:-?}" "${cov:-?}" \
		"${ft:-?}" "$corp" "$result" | tee -a "$OUT/$t.row"
}

jobs_max=${FUZZ_JOBS:-1}
running=0
for t in $targets; do
	if [ "$running" -ge "$jobs_max" ]; then
		wait -n || true
		running=$((running - 1))
	fi
	run_target "$t" &
	running=$((running + 1))
done
wait

echo
echo "Results (${SECONDS_PER_TARGET}s wall each, FUZZ_JOBS=$jobs_max, $(nproc) CPUs):"
echo "| target      | cpu (s) |        execs |    cov |     ft | corpus | result |"
echo "|-------------|---------|--------------|--------|--------|--------|--------|"
failed=""
for t in $targets; do
	row=$(cat "$OUT/$t.row")
	case $row in
	'!'*) failed="$failed $t"; row=${row#!} ;;
	esac
	printf '%s\n' "$row"
done
if [ -n "$failed" ]; then
	echo "fuzz: crashed:$failed" >&2
	exit 1
fi
