#!/bin/bash
# bench/warm.sh (issue 14, P2): `hutch run --rm micro -- true` restored from a warm template,
# against the raw QEMU cold-boot floor of bench/boot.sh, with a cold `run --rm --cold` beside it.
# Where a warm run's time goes: the restore (QEMU spawn -> the agent answers after
# migrate-incoming; from -v) and the rest (process start, new instance, monitor, exec, stop,
# removal). Prints medians; asserts nothing.
. "$(dirname "$0")/lib.sh"
bench_init "$@"

N=$BENCH_RUNS
bench_hutch_or_die create d --template micro
bench_floor_setup d

warm_once() {
	bench_time "$HUTCH" -v run --rm micro -- true >"$BENCH_TMP/warm.log" 2>&1 ||
		bench_die "hutch run --rm micro -- true failed: $(tail -n 20 "$BENCH_TMP/warm.log")"
	RESTORE=$(sed -n 's/.*restored from template micro in \([0-9]*\) ms.*/\1/p' "$BENCH_TMP/warm.log")
	[ -n "$RESTORE" ] || bench_die "the warm run was not restored: $(cat "$BENCH_TMP/warm.log")"
}

cold_once() {
	bench_time "$HUTCH" run --rm --cold micro -- true >"$BENCH_TMP/cold.log" 2>&1 ||
		bench_die "hutch run --rm --cold micro -- true failed: $(tail -n 20 "$BENCH_TMP/cold.log")"
}

# The first run makes the template (a cold boot, then the save): timed once, not counted.
bench_time "$HUTCH" -v run --rm micro -- true >"$BENCH_TMP/first.log" 2>&1 ||
	bench_die "the first run failed: $(cat "$BENCH_TMP/first.log")"
FIRST=$ELAPSED_MS
MADE=$(sed -n 's/.*made warm template micro in \([0-9.]*\) s.*/\1/p' "$BENCH_TMP/first.log")
bench_floor_run "${FLOOR_ARGV[@]}"
warm_once

F=() W=() WR=() WO=() C=()
for ((i = 0; i < N; i++)); do
	bench_floor_run "${FLOOR_ARGV[@]}"
	F+=("$ELAPSED_MS")
	warm_once
	W+=("$ELAPSED_MS")
	WR+=("$RESTORE")
	WO+=("$(bench_sub "$ELAPSED_MS" "$RESTORE")")
	if [ -z "${BENCH_WARM_NO_COLD:-}" ]; then
		cold_once
		C+=("$ELAPSED_MS")
	fi
done
left=$(ls "$HUTCH_HOME/data/vms" | grep -vx d | wc -l)

f=$(bench_median "${F[@]}")
w=$(bench_median "${W[@]}")
bench_title "warm (issue 14, P2): \`hutch run --rm micro -- true\` restored from a warm template vs raw QEMU"
echo "Floor: $FLOOR_DESC ($FLOOR_INIT_KIND)."
echo "$N runs each, interleaved; wall-clock ms. The first run made the template: ${FIRST} ms (save: ${MADE:-?} s), not counted."
echo
bench_header "what" "median ms" "p90 ms" "ratio to floor"
bench_row "**floor**: raw microvm cold boot, tiny init → poweroff" "$f" "$(bench_p90 "${F[@]}")" "1.00"
bench_row "**hutch run --rm micro -- true** (warm)" "$w" "$(bench_p90 "${W[@]}")" "**$(bench_ratio "$w" "$f")**"
bench_row "… restore: QEMU spawn → agent HELLO after migrate-incoming (-v)" "$(bench_median "${WR[@]}")" "$(bench_p90 "${WR[@]}")" "$(bench_ratio "$(bench_median "${WR[@]}")" "$f")"
bench_row "… the rest: CLI, new instance, monitor, plan, exec \`true\`, stop, removal" "$(bench_median "${WO[@]}")" "$(bench_p90 "${WO[@]}")" "$(bench_ratio "$(bench_median "${WO[@]}")" "$f")"
if [ ${#C[@]} -gt 0 ]; then
	c=$(bench_median "${C[@]}")
	bench_row "hutch run --rm --cold micro -- true" "$c" "$(bench_p90 "${C[@]}")" "$(bench_ratio "$c" "$f")"
fi
echo
echo "Target: warm ratio ≤ 0.08. Instances left behind: $left."
bench_summary "\`hutch run --rm micro -- true\` warm (P2)" "$w ms" "raw QEMU microvm cold boot $f ms" "$(bench_ratio "$w" "$f")" "≤ 0.08"
echo
bench_load_note
