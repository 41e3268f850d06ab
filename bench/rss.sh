#!/bin/bash
# bench/rss.sh (issue 5, P7): memory of the per-VM monitor (`hutch __monitor`) against its QEMU.
# Starts BENCH_RUNS micro VMs at once, reads VmRSS (and Pss, which splits shared pages among the
# processes mapping them) when idle after boot and after 20 exec sessions each. Asserts nothing.
. "$(dirname "$0")/lib.sh"
bench_init "$@"

NV=$BENCH_RUNS

pss_kb() {
	awk '/^Pss:/ { print $2 }' "/proc/$1/smaps_rollup" 2>/dev/null
}

for ((i = 0; i < NV; i++)); do
	bench_hutch_or_die create "r$i" --template micro
done
# all at once, as a user starting several VMs would
pids=()
for ((i = 0; i < NV; i++)); do
	"$HUTCH" start "r$i" >>"$BENCH_TMP/hutch.log" 2>&1 &
	pids+=($!)
done
failed=0
for p in "${pids[@]}"; do
	wait "$p" || failed=$((failed + 1))
done
[ "$failed" = 0 ] || bench_die "$failed of $NV concurrent starts failed$(tail -n 20 "$BENCH_TMP/hutch.log")"

sample() { # sample TAG: fill MON_<TAG>, MONP_<TAG>, QEMU_<TAG>
	local tag=$1 i m q
	local -a mr=() mp=() qr=()
	for ((i = 0; i < NV; i++)); do
		m=$(bench_monitor_pid "r$i") || bench_die "no monitor for r$i"
		q=$(bench_child_pid "$m") || bench_die "no QEMU under monitor $m"
		mr+=("$(bench_rss_kb "$m")")
		mp+=("$(pss_kb "$m")")
		qr+=("$(bench_rss_kb "$q")")
	done
	eval "MON_$tag=(\"\${mr[@]}\"); MONP_$tag=(\"\${mp[@]}\"); QEMU_$tag=(\"\${qr[@]}\")"
}
sample idle
for ((i = 0; i < NV; i++)); do
	for ((j = 0; j < 20; j++)); do
		"$HUTCH" exec "r$i" -- true >/dev/null 2>>"$BENCH_TMP/hutch.log" || bench_die "exec r$i failed"
	done
done
sample busy

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

bench_title "rss (issue 5, P7): monitor memory per running VM vs QEMU"
echo "$NV micro VMs started at once (all booted); KiB → MiB; median (max) over the VMs."
echo "\"after exec\" = after 20 \`hutch exec -- true\` sessions on each VM."
echo
bench_header "process" "VmRSS idle MiB" "VmRSS after exec MiB" "Pss after exec MiB" "ratio to QEMU RSS"
mi=$(bench_median "${MON_idle[@]}")
mb=$(bench_median "${MON_busy[@]}")
qi=$(bench_median "${QEMU_idle[@]}")
qb=$(bench_median "${QEMU_busy[@]}")
bench_row "**monitor** (\`hutch __monitor\`)" "$(mib "$mi") ($(mib "$(bench_max "${MON_idle[@]}")"))" \
	"$(mib "$mb") ($(mib "$(bench_max "${MON_busy[@]}")"))" \
	"$(mib "$(bench_median "${MONP_busy[@]}")") ($(mib "$(bench_max "${MONP_busy[@]}")"))" \
	"**$(bench_ratio "$mb" "$qb")**"
bench_row "QEMU (TCG, -m $(sed -n 's/^ *memory: *//p' "$HUTCH_HOME/data/vms/r0/spec.yml"))" "$(mib "$qi") ($(mib "$(bench_max "${QEMU_idle[@]}")"))" \
	"$(mib "$qb") ($(mib "$(bench_max "${QEMU_busy[@]}")"))" "–" "1.00"
bench_summary "monitor RSS per running VM (P7)" "$(mib "$mb") MiB (Pss $(mib "$(bench_median "${MONP_busy[@]}")"))" "QEMU $(mib "$qb") MiB" "$(bench_ratio "$mb" "$qb")" "–"
echo
bench_load_note
