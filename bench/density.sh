#!/bin/bash
# bench/density.sh (issue 14, P8): as many idle micro clones as fit, restored from one warm template
# (`hutch run --rm micro -- sleep`), each answering `hutch exec VM -- true`. Reports how many ran,
# how long they all took to start, total and per-VM PSS (QEMU + its monitor, from
# /proc/PID/smaps_rollup), exec p50/p99 across all of them, and that all of them stopped with
# nothing left. With TB (MiB) a second round runs the clones with that TCG translation cache
# (HUTCH_TB_SIZE) to show what the cache adds for idle VMs. Asserts nothing.
#
#   bench/density.sh [N [PAR [TB [IDLE]]]]
#   N: clones (default 100); PAR: starting at once (default 4); TB: MiB of TCG cache for a second
#   round (default: none); IDLE: seconds idle before measuring (default 20). Arguments, because
#   they survive lib.sh's re-exec as the bench user.
. "$(dirname "$0")/lib.sh"
bench_init "$@"

N=${1:-100}
PAR=${2:-4}
BENCH_DENSITY_TB=${3:-}
IDLE=${4:-20}

"$HUTCH" template save micro >"$BENCH_TMP/save.log" 2>&1 || bench_die "template save micro: $(cat "$BENCH_TMP/save.log")"

# ready_count: clones whose agent answers (list asks every monitor).
ready_count() {
	"$HUTCH" list 2>/dev/null | awk 'NR > 1 && $1 ~ /^micro-/ && $2 == "running" && / ready / { n++ } END { print n + 0 }'
}

# pss_kb PID: Pss from smaps_rollup, KiB.
pss_kb() {
	awk '/^Pss:/ { print $2 }' "/proc/$1/smaps_rollup" 2>/dev/null
}

# round LABEL: start N clones, measure, stop them all.
round() {
	local label=$1 i cli=() t0 ran names pss_q=0 pss_m=0 rss_q=0 n_q=0 e=() name mon q
	bench_now
	t0=$NOW_US
	for ((i = 0; i < N; i++)); do
		"$HUTCH" run --rm micro -- sleep 1000000 </dev/null >>"$BENCH_TMP/clients.log" 2>&1 &
		cli+=($!)
		# no more than PAR clones starting at once
		while [ $(($(ready_count) + PAR)) -le "$i" ]; do
			sleep 0.5
			# a client that died means its clone failed: stop waiting for it
			[ "$(jobs -rp | wc -l)" -ge $((i + 1)) ] || break
		done
	done
	local deadline=$((SECONDS + 60 + N * 5))
	while [ "$(ready_count)" -lt "$N" ] && [ $SECONDS -lt $deadline ] && [ "$(jobs -rp | wc -l)" -ge "$N" ]; do
		sleep 1
	done
	bench_now
	START_S=$(awk -v a="$t0" -v b="$NOW_US" 'BEGIN { printf "%.1f", (b - a) / 1e6 }')
	names=$("$HUTCH" list 2>/dev/null | awk 'NR > 1 && $1 ~ /^micro-/ && $2 == "running" && / ready / { print $1 }')
	ran=$(printf '%s\n' "$names" | grep -c .)
	sleep "$IDLE"
	for name in $names; do
		# pgrep, not bench_monitor_pid: that one scans every process's environment per call
		mon=$(pgrep -u "$(id -u)" -f -- "__monitor $name " | head -n1)
		[ -n "$mon" ] || continue
		q=$(bench_child_pid "$mon") || continue
		pss_m=$((pss_m + $(pss_kb "$mon")))
		pss_q=$((pss_q + $(pss_kb "$q")))
		rss_q=$((rss_q + $(bench_rss_kb "$q")))
		n_q=$((n_q + 1))
	done
	for name in $names; do
		bench_time "$HUTCH" exec "$name" -- true >/dev/null 2>&1 && e+=("$ELAPSED_MS")
	done
	local load
	load=$(cut -d' ' -f1-3 /proc/loadavg)
	# Stopping: their run clients go, and each monitor stops its disposable VM and removes it.
	kill "${cli[@]}" 2>/dev/null
	wait 2>/dev/null
	deadline=$((SECONDS + 120))
	while [ -n "$(bench_home_pids | xargs -r ps -o comm= -p 2>/dev/null | grep -E 'qemu|hutch')" ] && [ $SECONDS -lt $deadline ]; do
		sleep 1
	done
	local qleft inst
	qleft=$(bench_home_pids | wc -l)
	inst=$(ls "$HUTCH_HOME/data/vms" 2>/dev/null | grep -c '^micro-')
	local tot=$((pss_q + pss_m))
	bench_row "$label" "$N" "$ran" "$START_S" \
		"$(awk -v k="$tot" 'BEGIN { printf "%.0f", k / 1024 }')" \
		"$(awk -v k="$tot" -v n="$n_q" 'BEGIN { if (n) printf "%.1f", k / 1024 / n; else print "n/a" }')" \
		"$(awk -v k="$pss_q" -v n="$n_q" 'BEGIN { if (n) printf "%.1f", k / 1024 / n; else print "n/a" }')" \
		"$(awk -v k="$rss_q" -v n="$n_q" 'BEGIN { if (n) printf "%.1f", k / 1024 / n; else print "n/a" }')" \
		"$(bench_median "${e[@]}")" "$(bench_pct 99 "${e[@]}")" "$load" "$qleft processes, $inst instances"
	SUMMARY_RAN=$ran
	SUMMARY_PSS=$(awk -v k="$tot" -v n="$n_q" 'BEGIN { if (n) printf "%.1f", k / 1024 / n; else print "n/a" }')
}

bench_title "density (issue 14, P8): idle micro clones of one warm template, each answering exec"
echo "Clones started with \`hutch run --rm micro -- sleep\`, $PAR starting at once; measured after $IDLE s idle."
echo "PSS from /proc/PID/smaps_rollup: QEMU + its monitor per VM (the template's page-cache pages are shared)."
echo
bench_header "round" "wanted" "ran" "all up (s)" "total PSS MiB" "PSS/VM MiB" "QEMU PSS/VM" "QEMU RSS/VM" "exec p50 ms" "exec p99 ms" "load at idle" "left after stop"
round "default TCG cache"
first_ran=$SUMMARY_RAN first_pss=$SUMMARY_PSS
if [ -n "${BENCH_DENSITY_TB:-}" ]; then
	export HUTCH_TB_SIZE=$BENCH_DENSITY_TB
	round "tb-size=${BENCH_DENSITY_TB} MiB"
	unset HUTCH_TB_SIZE
fi
echo
echo "Targets: 100 idle VMs answering exec (P8); PSS per idle clone ≤ 32 MiB."
bench_summary "idle micro clones answering exec (P8)" "$first_ran of $N, $first_pss MiB PSS each" "-" "-" "100, ≤ 32 MiB"
echo
bench_load_note
