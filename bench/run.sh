#!/bin/bash
# bench/run.sh (issue 3, P1): `hutch run --rm micro -- true` (fresh disposable instance, boot,
# exec, stop, cleanup) against the raw QEMU floor of bench/boot.sh. Prints medians; asserts nothing.
# --cold: a cold boot, as P1 means it; bench/warm.sh measures the warm-template restore (P2).
. "$(dirname "$0")/lib.sh"
bench_init "$@"

N=$BENCH_RUNS
# A defined VM only to render the argv the floor copies; `run --rm micro` builds the same one.
bench_hutch_or_die create d --template micro
bench_floor_setup d

run_once() {
	bench_time "$HUTCH" -v run --rm --cold micro -- true >"$BENCH_TMP/run.log" 2>&1 ||
		bench_die "hutch run --rm micro -- true failed: $(tail -n 20 "$BENCH_TMP/run.log")"
	# -v prints "started NAME in S s": the boot part, as start reports it
	RUN_BOOT=$(sed -n 's/.*started .* in \([0-9.]*\) s.*/\1/p' "$BENCH_TMP/run.log" | awk '{ printf "%.1f", $1 * 1000 }')
	RUN_REST=$(bench_sub "$ELAPSED_MS" "${RUN_BOOT:-0}")
}

# Warm-up, not counted.
bench_floor_run "${FLOOR_ARGV[@]}"
run_once

F=() R=() RB=() RR=()
for ((i = 0; i < N; i++)); do
	bench_floor_run "${FLOOR_ARGV[@]}"
	F+=("$ELAPSED_MS")
	run_once
	R+=("$ELAPSED_MS")
	RB+=("$RUN_BOOT")
	RR+=("$RUN_REST")
done
left=$(ls "$HUTCH_HOME/data/vms" | grep -vx d | wc -l)

f=$(bench_median "${F[@]}")
r=$(bench_median "${R[@]}")
bench_title "run (issue 3, P1): \`hutch run --rm micro -- true\` vs raw QEMU"
echo "Floor: $FLOOR_DESC ($FLOOR_INIT_KIND)."
echo "$N runs each, interleaved; wall-clock ms. \`run --rm\` = new instance + boot + exec + stop + removal."
echo
bench_header "what" "median ms" "p90 ms" "ratio to floor"
bench_row "**floor**: raw microvm, tiny init → poweroff" "$f" "$(bench_p90 "${F[@]}")" "1.00"
bench_row "**hutch run --rm micro -- true**" "$r" "$(bench_p90 "${R[@]}")" "**$(bench_ratio "$r" "$f")**"
bench_row "… boot: instance start until HELLO (as \`-v\` reports it)" "$(bench_median "${RB[@]}")" "$(bench_p90 "${RB[@]}")" "$(bench_ratio "$(bench_median "${RB[@]}")" "$f")"
bench_row "… the rest: process start, new instance, exec \`true\`, stop, removal" "$(bench_median "${RR[@]}")" "$(bench_p90 "${RR[@]}")" "–"
echo
echo "Target: ratio ≤ 1.10. Instances left behind after $((N + 1)) runs: $left."
bench_summary "\`hutch run --rm micro -- true\` (P1)" "$r ms" "raw QEMU microvm $f ms" "$(bench_ratio "$r" "$f")" "≤ 1.10"
echo
bench_load_note
