#!/bin/bash
# bench/accel.sh (issue 9): what proving KVM costs. The probe's one-time cost (once per host boot),
# next to one TCG micro boot (`hutch run --rm --accel tcg micro -- true`), and what a cached verdict
# adds to every start, next to the floor it replaces (open and close /dev/kvm). Measures and prints;
# asserts nothing.
#
# Run it as the user whose KVM you want measured: on this machine kind only root can open /dev/kvm
# (where the probe fails), so `sudo bench/accel.sh` measures the probe; as a user it measures the
# cached-verdict path only.
#   BENCH_RUNS  probes and boots to take (default 3)
#   BUILD_DIR   where hutch and accel-bench are (default build)
set -u
export LC_ALL=C
here=$(cd "$(dirname "$0")" && pwd)
BUILD_DIR=${BUILD_DIR:-$(dirname "$here")/build}
HUTCH=$BUILD_DIR/hutch
N=${BENCH_RUNS:-3}
[ -x "$HUTCH" ] && [ -x "$BUILD_DIR/accel-bench" ] || {
	echo "accel.sh: build first (hutch and accel-bench in $BUILD_DIR)" >&2
	exit 1
}
home=$(mktemp -d /tmp/hutch-bench-accel.XXXXXX)
trap 'rm -rf "$home"' EXIT
export HUTCH_HOME=$home
unset HUTCH_ACCEL

median()
{
	sort -n | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)]; else print "-" }'
}
now_ms()
{
	echo $(($(date +%s%N) / 1000000))
}

"$HUTCH" setup >/dev/null 2>&1 || "$HUTCH" run --rm --accel tcg micro -- true >/dev/null 2>&1

# the floor: one disposable micro VM under TCG, what every start pays anyway
boots=()
for ((i = 0; i < N; i++)); do
	t0=$(now_ms)
	"$HUTCH" run --rm --accel tcg micro -- true >/dev/null 2>&1 || { echo "accel.sh: run --rm failed" >&2; exit 1; }
	boots+=($(($(now_ms) - t0)))
done
boot=$(printf '%s\n' "${boots[@]}" | median)

if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
	probes=()
	for ((i = 0; i < N; i++)); do
		rm -f "$home/cache/accel.json"
		out=$("$HUTCH" doctor --probe --json 2>/dev/null)
		probes+=("$(printf '%s' "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["accel"]["probe_ms"])')")
	done
	verdict=$(printf '%s' "$out" | python3 -c 'import json,sys; a=json.load(sys.stdin)["accel"]; print(("works, -cpu " + a["cpu"]) if a["works"] else ("fails: " + a["detail"]))')
	probe=$(printf '%s\n' "${probes[@]}" | median)
	probe_row=$(awk -v p="$probe" -v b="$boot" 'BEGIN { printf "%7d ms  %5.2fx one TCG micro boot", p, p / b }')
else
	verdict="not run: /dev/kvm is not usable by $(id -un) (auto uses TCG without probing)"
	probe_row="      -    (no probe for this user)"
fi

res=$("$BUILD_DIR/accel-bench" 2000)
resolve=$(printf '%s' "$res" | python3 -c 'import json,sys; print(json.load(sys.stdin)["resolve_us"])')
open_us=$(printf '%s' "$res" | python3 -c 'import json,sys; print(json.load(sys.stdin)["open_us"])')
cached=$(printf '%s' "$res" | python3 -c 'import json,sys; print(json.load(sys.stdin)["cached_verdict"])')

added=$(awk -v r="$resolve" -v o="$open_us" 'BEGIN { printf "%.3f", (r - o) / 1000 }')
echo "### accel: proving KVM"
echo
echo "$(uname -r), QEMU $(qemu-system-x86_64 --version | head -1 | sed 's/^QEMU emulator version //'), as $(id -un); medians of $N runs; the decision per start is the mean of 2000 rounds."
echo
echo "| figure | value | floor | ratio |"
echo "|---|---|---|---|"
echo "| KVM verdict on this host | $verdict | – | – |"
if [ -n "${probe:-}" ]; then
	echo "| probe, once per host boot | $probe ms | one \`run --rm --accel tcg micro -- true\` $boot ms | $(awk -v p="$probe" -v b="$boot" 'BEGIN { printf "%.2f", p / b }') |"
	echo "<!-- summary: accel: KVM probe, once per host boot | $probe ms | TCG \`run --rm micro\` $boot ms | $(awk -v p="$probe" -v b="$boot" 'BEGIN { printf "%.2f", p / b }') | – -->"
else
	echo "| probe, once per host boot | not run ($(id -un) cannot use /dev/kvm) | one \`run --rm --accel tcg micro -- true\` $boot ms | – |"
fi
echo "| decision per start, cached verdict (verdict cached: $cached) | $resolve us | open+close /dev/kvm (the old check) $open_us us | $(awk -v r="$resolve" -v o="$open_us" 'BEGIN { printf "%.1f", r / o }') |"
echo "| added to each start by the cached verdict | $added ms | target < 1 ms | – |"
echo "<!-- summary: accel: decision per start, cached verdict | $resolve us | open /dev/kvm $open_us us | $(awk -v r="$resolve" -v o="$open_us" 'BEGIN { printf "%.1f", r / o }') | < 1 ms added -->"
