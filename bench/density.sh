#!/bin/bash
# bench/density.sh (issue 14, P8): as many idle micro clones as fit, restored from one warm template
# (`hutch run --rm micro -- sleep`), each answering `hutch exec VM -- true`. Reports how many ran,
# how long they all took to start, total and per-VM PSS (QEMU + its monitor, from
# /proc/PID/smaps_rollup), the idle CPU per VM, exec p50/p99 across all of them, and that all of
# them stopped with nothing left; then where one clone's memory goes (its smaps by mapping). With TB
# (MiB) a second round runs the clones with that TCG translation cache (HUTCH_TB_SIZE; 0 is QEMU's
# own default, 1 GiB) against hutch's clone default (32 MiB), to show what the cache adds for idle
# VMs. Asserts nothing.
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

# cpu_ticks PID: user+system clock ticks so far.
cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# breakdown PID: one clone's QEMU memory by mapping (KiB of PSS, and of it private/anonymous):
# the TCG translation cache (the rwx anonymous mapping), the guest RAM file (PSS: the template's
# pages it shares; anonymous: pages the clone wrote, copy-on-write), the heap, QEMU and its
# libraries (file pages shared by all clones; anonymous: their relocated data), the rest.
breakdown() {
	awk -v tmpl="$HUTCH_HOME/cache/warm/" '
	/^[0-9a-f]+-[0-9a-f]+ / {
		perm = $2; name = $6
		if (name == "" && perm ~ /x/) k = "TCG translation cache"
		else if (index(name, tmpl) == 1) k = "guest RAM (template file, MAP_PRIVATE)"
		else if (name == "[heap]") k = "heap (malloc)"
		else if (name ~ /^\//) k = "QEMU binary and libraries"
		else if (name == "") k = "other anonymous (thread arenas, stacks, ROM blocks)"
		else k = "other (" name ")"
		next
	}
	/^Pss:/ { pss[k] += $2 }
	/^Anonymous:/ { anon[k] += $2 }
	END {
		for (k in pss) if (pss[k] >= 100) printf "| %s | %.1f | %.1f |\n", k, pss[k] / 1024, anon[k] / 1024
	}' "/proc/$1/smaps" 2>/dev/null | sort -t'|' -k3 -rn
}

# round LABEL: start N clones, measure, stop them all.
round() {
	local label=$1 i cli=() t0 ran names pss_q=0 pss_m=0 rss_q=0 n_q=0 e=() name mon q qs=() c0=0 c1=0 tq
	BREAKDOWN_PID=
	bench_now
	t0=$NOW_US
	for ((i = 0; i < N; i++)); do
		"$HUTCH" run --rm micro -- sleep 1000000 </dev/null >>"$BENCH_TMP/clients.log" 2>&1 &
		cli+=($!)
		# no more than PAR clones starting at once
		while [ $(($(ready_count) + PAR)) -le "$i" ]; do
			sleep 1
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
	local mons=()
	for name in $names; do
		# pgrep, not bench_monitor_pid: that one scans every process's environment per call
		mon=$(pgrep -u "$(id -u)" -f -- "__monitor $name " | head -n1)
		[ -n "$mon" ] || continue
		q=$(bench_child_pid "$mon") || continue
		mons+=("$mon") qs+=("$q")
		c0=$((c0 + $(cpu_ticks "$q")))
	done
	bench_now
	tq=$NOW_US
	sleep "$IDLE"
	for ((i = 0; i < ${#qs[@]}; i++)); do
		mon=${mons[$i]} q=${qs[$i]}
		c1=$((c1 + $(cpu_ticks "$q")))
		pss_m=$((pss_m + $(pss_kb "$mon")))
		pss_q=$((pss_q + $(pss_kb "$q")))
		rss_q=$((rss_q + $(bench_rss_kb "$q")))
		n_q=$((n_q + 1))
	done
	bench_now
	# idle CPU per VM: QEMU's ticks over the idle wait, as % of one host CPU
	local hz cpu
	hz=$(getconf CLK_TCK)
	cpu=$(awk -v a="$c0" -v b="$c1" -v n="$n_q" -v hz="$hz" -v t0="$tq" -v t1="$NOW_US" \
		'BEGIN { if (n && t1 > t0) printf "%.1f", 100 * (b - a) / hz / ((t1 - t0) / 1e6) / n; else print "n/a" }')
	[ ${#qs[@]} -gt 0 ] && BREAKDOWN_PID=${qs[0]} && breakdown "$BREAKDOWN_PID" >"$BENCH_TMP/breakdown.$ROUND"
	for name in $names; do
		bench_time "$HUTCH" exec "$name" -- true >/dev/null 2>&1 && e+=("$ELAPSED_MS")
	done
	local load
	load=$(cut -d' ' -f1-3 /proc/loadavg)
	# why clones did not come up (their run clients' errors, once each)
	grep -h '^hutch: ' "$BENCH_TMP/clients.log" 2>/dev/null | grep -v 'warning: using TCG' | sort | uniq -c |
		sort -rn | head -n 5 >"$BENCH_TMP/errors.$ROUND"
	: >"$BENCH_TMP/clients.log"
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
		"$cpu" "$(bench_median "${e[@]}")" "$(bench_pct 99 "${e[@]}")" "$load" "$qleft processes, $inst instances"
	SUMMARY_RAN=$ran
	SUMMARY_PSS=$(awk -v k="$tot" -v n="$n_q" 'BEGIN { if (n) printf "%.1f", k / 1024 / n; else print "n/a" }')
}

bench_title "density (issue 14, P8): idle micro clones of one warm template, each answering exec"
echo "Clones started with \`hutch run --rm micro -- sleep\`, $PAR starting at once; measured after $IDLE s idle."
echo "PSS from /proc/PID/smaps_rollup: QEMU + its monitor per VM (the template's page-cache pages are shared)."
echo "Idle CPU: each QEMU's user+system time over the idle wait, % of one host CPU, mean per VM."
echo
bench_header "round" "wanted" "ran" "all up (s)" "total PSS MiB" "PSS/VM MiB" "QEMU PSS/VM" "QEMU RSS/VM" "idle CPU/VM %" "exec p50 ms" "exec p99 ms" "load at idle" "left after stop"
ROUND=1
round "hutch's clone settings (TCG cache 32 MiB, no THP)"
first_ran=$SUMMARY_RAN first_pss=$SUMMARY_PSS
if [ -n "${BENCH_DENSITY_TB:-}" ]; then
	export HUTCH_TB_SIZE=$BENCH_DENSITY_TB
	ROUND=2
	if [ "$BENCH_DENSITY_TB" = 0 ]; then
		round "QEMU's default TCG cache (1 GiB)"
	else
		round "TCG cache ${BENCH_DENSITY_TB} MiB"
	fi
	unset HUTCH_TB_SIZE
fi
for r in 1 2; do
	if [ -s "$BENCH_TMP/errors.$r" ]; then
		echo
		echo "Round $r: what the clients that failed said (count, message):"
		echo
		sed 's/^/    /' "$BENCH_TMP/errors.$r"
	fi
	[ -s "$BENCH_TMP/breakdown.$r" ] || continue
	echo
	echo "One clone's QEMU after $IDLE s idle, round $r, by mapping (MiB):"
	echo
	bench_header "mapping" "PSS" "of it private (anonymous)"
	cat "$BENCH_TMP/breakdown.$r"
done
echo
echo "Targets: 100 idle VMs answering exec (P8); PSS per idle clone ≤ 32 MiB."
bench_summary "idle micro clones answering exec (P8)" "$first_ran of $N, $first_pss MiB PSS each" "-" "-" "100, ≤ 32 MiB"
echo
bench_load_note
