#!/bin/bash
# bench/warm-oci.sh (issues 14, 15): `hutch run --rm BOX -- sh -c :` for a plain container image's VM
# (the tests' busybox OCI image under micro's kernel) restored from its warm template (each clone on
# a fresh overlay of the template's frozen disk), against the same VM booted cold by hutch
# (`run --rm --cold BOX -- sh -c :`). Also how long `template save` took. Prints medians; asserts
# nothing.
#
#   BENCH_RUNS       warm runs (default 5)
#   BENCH_BOOT_RUNS  cold runs (default 3)
. "$(dirname "$0")/lib.sh"
bench_init "$@"
TITLE="warm container-image VM (issues 14, 15): \`hutch run --rm BOX -- sh -c :\` restored from a warm template vs a cold boot"
SUMMARY="\`hutch run --rm BOX -- sh -c :\`, busybox OCI image, warm"
N=$BENCH_RUNS
C=${BENCH_BOOT_RUNS:-3}

gen=$BENCH_REPO/tests/integration/oci-image.py
[ -f "$gen" ] || bench_die "no $gen"
python3 "$gen" --busybox-base "$BENCH_TMP/bb.tar" || bench_die "the busybox base failed"
python3 "$gen" "$BENCH_TMP/bb.tar" "$BENCH_TMP/img" --no-kernel >/dev/null || bench_die "the OCI image failed"
bench_hutch_or_die create box --oci "oci:$BENCH_TMP/img/layout:test"

bench_time "$HUTCH" template save box >"$BENCH_TMP/save.log" 2>&1 ||
	bench_die "template save box failed: $(tail -n 20 "$BENCH_TMP/save.log")"
SAVE=$ELAPSED_MS

W=() WR=()
for ((i = 0; i < N; i++)); do
	bench_time "$HUTCH" -v run --rm box -- sh -c : >"$BENCH_TMP/warm.log" 2>&1 ||
		bench_die "hutch run --rm box -- sh -c : failed: $(tail -n 20 "$BENCH_TMP/warm.log")"
	r=$(sed -n 's/.*restored from template box in \([0-9]*\) ms.*/\1/p' "$BENCH_TMP/warm.log")
	[ -n "$r" ] || bench_die "the warm run was not restored: $(cat "$BENCH_TMP/warm.log")"
	W+=("$ELAPSED_MS")
	WR+=("$r")
done
K=()
for ((i = 0; i < C; i++)); do
	bench_time "$HUTCH" run --rm --cold box -- sh -c : >"$BENCH_TMP/cold.log" 2>&1 ||
		bench_die "hutch run --rm --cold box -- sh -c : failed: $(tail -n 20 "$BENCH_TMP/cold.log")"
	K+=("$ELAPSED_MS")
done
left=0
for d in "$HUTCH_HOME"/data/vms/*/; do
	[ -d "$d" ] && [ "$(basename "$d")" != box ] && left=$((left + 1))
done

w=$(bench_median "${W[@]}")
k=$(bench_median "${K[@]}")
bench_title "$TITLE"
echo "busybox OCI image (tests/integration/oci-image.py) under micro's kernel, TCG. $N warm runs, $C cold runs; wall-clock ms."
echo "\`template save box\` (boot on its own overlay of the image's root filesystem, save at HELLO): ${SAVE} ms, not counted."
echo
bench_header "what" "median ms" "p90 ms" "ratio to cold"
bench_row "**peer**: the same VM cold, \`hutch run --rm --cold box -- sh -c :\`" "$k" "$(bench_p90 "${K[@]}")" "1.00"
bench_row "**hutch run --rm box -- sh -c :** (warm)" "$w" "$(bench_p90 "${W[@]}")" "**$(bench_ratio "$w" "$k")**"
bench_row "… restore: QEMU spawn → agent HELLO after migrate-incoming (-v)" "$(bench_median "${WR[@]}")" "$(bench_p90 "${WR[@]}")" "$(bench_ratio "$(bench_median "${WR[@]}")" "$k")"
echo
echo "Instances left behind: $left."
bench_summary "$SUMMARY" "$w ms" "the same VM booted cold by hutch $k ms" "$(bench_ratio "$w" "$k")" "–"
echo
bench_load_note
