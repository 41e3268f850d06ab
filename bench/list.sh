#!/bin/bash
# bench/list.sh (issue 5, P5): `hutch list -a` with 500 defined, stopped VMs, against `ls` of the
# VM directory. Prints medians/p90; asserts nothing.
#   BENCH_LIST_N  number of VMs (default 500)
. "$(dirname "$0")/lib.sh"
bench_init "$@"

NV=${BENCH_LIST_N:-500}
N=$BENCH_RUNS
[ "$N" -ge 10 ] || N=10 # each sample is milliseconds: take at least 10
VMS=$HUTCH_HOME/data/vms

# Defined through hutch itself, so the specs are exactly what `create` writes.
bench_hutch_or_die create vm0 --template micro
bench_now
t0=$NOW_US
for ((i = 1; i < NV; i++)); do
	"$HUTCH" create "vm$i" --template micro >/dev/null 2>>"$BENCH_TMP/hutch.log" || bench_die "create vm$i failed"
done
bench_now
create_each=$(awk -v u=$((NOW_US - t0)) -v n=$((NV - 1)) 'BEGIN { printf "%.1f", u / 1000 / n }')

rows=$("$HUTCH" list -a | tail -n +2 | wc -l)
[ "$rows" = "$NV" ] || bench_die "hutch list -a shows $rows VMs, want $NV"

lat() { # lat VAR CMD...
	local var=$1 i
	shift
	local -a s=()
	"$@" >/dev/null 2>&1 # warm-up
	for ((i = 0; i < N; i++)); do
		bench_time "$@" >/dev/null 2>>"$BENCH_TMP/hutch.log" || bench_die "failed: $*"
		s+=("$ELAPSED_MS")
	done
	eval "$var=(\"\${s[@]}\")"
}
lat LS ls "$VMS"
lat LSL ls -l "$VMS"
lat CAT sh -c 'cat "$1"/*/spec.yml' sh "$VMS"
lat LIST "$HUTCH" list -a
lat JLIST "$HUTCH" --json list -a

ls_m=$(bench_median "${LS[@]}")
bench_title "list (issue 5, P5): \`hutch list -a\` with $NV defined VMs"
echo "$N runs each; wall-clock ms; all $NV VMs stopped. (Creating them took $create_each ms per \`hutch create\`.)"
echo
bench_header "what" "median ms" "p90 ms" "ratio to \`ls\`"
bench_row "floor: \`ls\` of the VM dir" "$ls_m" "$(bench_p90 "${LS[@]}")" "1.00"
bench_row "\`ls -l\` of the VM dir" "$(bench_median "${LSL[@]}")" "$(bench_p90 "${LSL[@]}")" "$(bench_ratio "$(bench_median "${LSL[@]}")" "$ls_m")"
bench_row "\`cat */spec.yml\` (reading every spec)" "$(bench_median "${CAT[@]}")" "$(bench_p90 "${CAT[@]}")" "$(bench_ratio "$(bench_median "${CAT[@]}")" "$ls_m")"
bench_row "**\`hutch list -a\`**" "$(bench_median "${LIST[@]}")" "$(bench_p90 "${LIST[@]}")" "**$(bench_ratio "$(bench_median "${LIST[@]}")" "$ls_m")**"
bench_row "\`hutch --json list -a\`" "$(bench_median "${JLIST[@]}")" "$(bench_p90 "${JLIST[@]}")" "$(bench_ratio "$(bench_median "${JLIST[@]}")" "$ls_m")"
bench_summary "\`hutch list -a\`, $NV VMs (P5)" "$(bench_median "${LIST[@]}") ms" "\`ls\` $ls_m ms" "$(bench_ratio "$(bench_median "${LIST[@]}")" "$ls_m")" "–"
echo
echo "Per VM: $(awk -v a="$(bench_median "${LIST[@]}")" -v n="$NV" 'BEGIN { printf "%.3f", a / n }') ms in \`hutch list -a\`."
