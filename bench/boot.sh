#!/bin/bash
# bench/boot.sh (issue 2, P1): `hutch start` (until the agent's HELLO) + `hutch stop`, against the
# floor: raw qemu-system-x86_64 -M microvm with the same kernel, memory, accel and kernel command
# line, booting a tiny initramfs whose init powers off at once. Prints medians; asserts nothing.
. "$(dirname "$0")/lib.sh"
bench_init "$@"

N=$BENCH_RUNS
bench_hutch_or_die create d --template micro
bench_floor_setup d
bench_floor_variant_full
bench_floor_variant_initrd
CONSOLE_LOG=$HUTCH_HOME/data/vms/d/console.log

hutch_round() {
	local out
	bench_time "$HUTCH" --json start d >"$BENCH_TMP/start.json" 2>>"$BENCH_TMP/hutch.log" ||
		bench_die "hutch start d failed: $(cat "$BENCH_TMP/start.json")"
	START_MS=$ELAPSED_MS
	START_CPU=$CPU_MS
	local mon qemu
	mon=$(bench_monitor_pid d) || bench_die "no monitor for d"
	qemu=$(bench_child_pid "$mon") || bench_die "no QEMU under the monitor"
	QEMU_CPU=$(bench_proc_cpu_ms "$qemu")
	MON_CPU=$(bench_proc_cpu_ms "$mon")
	out=$(grep -o 'ready in [0-9]* ms' "$CONSOLE_LOG" 2>/dev/null | grep -o '[0-9]*' | head -n1)
	AGENT_READY=${out:-nan}
	bench_time "$HUTCH" --json stop d >"$BENCH_TMP/stop.json" 2>>"$BENCH_TMP/hutch.log" ||
		bench_die "hutch stop d failed: $(cat "$BENCH_TMP/stop.json")"
	STOP_MS=$ELAPSED_MS
	STOP_CPU=$CPU_MS
	STOP_METHOD=$(sed -n 's/.*"method": *"\([a-z]*\)".*/\1/p' "$BENCH_TMP/stop.json")
}

# Warm-up, not counted: page cache, and proof that both sides work.
bench_floor_run "${FLOOR_ARGV[@]}"
hutch_round

C0=() C1=() C2=() CH=() CQ=() CM=() CC=()
F0=() F1=() F2=() H=() HS=() HP=() SPAWN=() QMP=() HELLO=() BOOT=() READY=() CLI=() OUTSIDE=()
for ((i = 0; i < N; i++)); do
	# interleaved, so drift on a shared machine hits every column alike
	bench_floor_run "${FLOOR_ARGV[@]}"
	F0+=("$ELAPSED_MS")
	C0+=("$CPU_MS")
	bench_floor_run "${FLOOR_FULL_ARGV[@]}"
	F1+=("$ELAPSED_MS")
	C1+=("$CPU_MS")
	bench_floor_run "${FLOOR_INITRD_ARGV[@]}"
	F2+=("$ELAPSED_MS")
	C2+=("$CPU_MS")
	hutch_round
	HS+=("$START_MS")
	HP+=("$STOP_MS")
	H+=("$(awk -v a="$START_MS" -v b="$STOP_MS" 'BEGIN { printf "%.1f", a + b }')")
	CQ+=("$QEMU_CPU")
	CM+=("$MON_CPU")
	CC+=("$(awk -v a="$START_CPU" -v b="$STOP_CPU" 'BEGIN { printf "%.1f", a + b }')")
	CH+=("$(awk -v a="$START_CPU" -v b="$STOP_CPU" -v q="$QEMU_CPU" -v m="$MON_CPU" 'BEGIN { printf "%.1f", a + b + q + m }')")
	j=$BENCH_TMP/start.json
	spawn=$(bench_json_num monitor_spawn_ms <"$j")
	qmp=$(bench_json_num qmp_ms <"$j")
	hello=$(bench_json_num agent_hello_ms <"$j")
	boot=$(bench_json_num boot_ms <"$j")
	SPAWN+=("$spawn")
	QMP+=("$((qmp - spawn))")
	HELLO+=("$((hello - qmp))")
	BOOT+=("$boot")
	CLI+=("$((boot - hello))")
	OUTSIDE+=("$(bench_sub "$START_MS" "$boot")")
	READY+=("$AGENT_READY")
done

f0=$(bench_median "${F0[@]}")
f1=$(bench_median "${F1[@]}")
f2=$(bench_median "${F2[@]}")
h=$(bench_median "${H[@]}")
hs=$(bench_median "${HS[@]}")
hp=$(bench_median "${HP[@]}")

bench_title "boot (issue 2, P1): \`hutch start\` + \`hutch stop\` vs raw QEMU"
echo "Floor: $FLOOR_DESC ($FLOOR_INIT_KIND)."
echo "Kernel command line (from \`hutch inspect --render\`): \`$FLOOR_APPEND\`."
echo "$N runs each, interleaved; wall-clock ms."
echo
bench_header "what" "median ms" "p90 ms" "ratio to floor"
bench_row "**floor**: raw microvm, tiny init → poweroff" "$f0" "$(bench_p90 "${F0[@]}")" "1.00"
bench_row "**hutch start (until HELLO) + stop**" "$h" "$(bench_p90 "${H[@]}")" "**$(bench_ratio "$h" "$f0")**"
bench_row "… \`hutch start\` alone" "$hs" "$(bench_p90 "${HS[@]}")" "$(bench_ratio "$hs" "$f0")"
bench_row "… \`hutch stop\` alone (method: ${STOP_METHOD:-?})" "$hp" "$(bench_p90 "${HP[@]}")" "–"
echo
echo "Target: ratio ≤ 1.10."
bench_summary "boot: \`hutch start\` + \`stop\` (P1)" "$h ms" "raw QEMU microvm $f0 ms" "$(bench_ratio "$h" "$f0")" "≤ 1.10"
echo
echo "Where the extra time goes (medians). Two more floors split the guest side: hutch's exact"
echo "QEMU argv (its virtio devices and seccomp sandbox; sockets swapped for null/file chardevs),"
echo "first with the tiny initramfs, then with hutch's own initramfs and the poweroff init added"
echo "as \`rdinit=/floor-init\` (so the kernel unpacks it but no module is loaded and no agent runs)."
echo
bench_header "step" "median ms" "delta ms"
bench_row "floor: raw microvm, tiny init" "$f0" "–"
bench_row "+ hutch's devices and sandbox (same argv, tiny init)" "$f1" "$(bench_sub "$f1" "$f0")"
bench_row "+ hutch's initramfs ($(($(stat -c %s "$FLOOR_HUTCH_INITRD") / 1024)) KiB) unpacked, no agent" "$f2" "$(bench_sub "$f2" "$f1")"
bench_row "hutch start + stop (module loading, agent, host side)" "$h" "$(bench_sub "$h" "$f2")"
echo
echo "Inside \`hutch start\` (from \`hutch --json start\`, medians):"
echo
bench_header "phase" "median ms" "p90 ms"
bench_row "monitor setup before QEMU spawn (spec load, template cache check, argv)" "$(bench_median "${SPAWN[@]}")" "$(bench_p90 "${SPAWN[@]}")"
bench_row "QEMU exec → QMP handshake done" "$(bench_median "${QMP[@]}")" "$(bench_p90 "${QMP[@]}")"
bench_row "QMP done → agent HELLO (guest kernel + agent init)" "$(bench_median "${HELLO[@]}")" "$(bench_p90 "${HELLO[@]}")"
bench_row "CLI: lock, fork/exec of the monitor, notify pipe (boot_ms − hello_ms)" "$(bench_median "${CLI[@]}")" "$(bench_p90 "${CLI[@]}")"
bench_row "hutch process start/exit outside boot_ms" "$(bench_median "${OUTSIDE[@]}")" "$(bench_p90 "${OUTSIDE[@]}")"
bench_row "guest: agent 'ready in' (PID 1 start → HELLO sent, guest clock)" "$(bench_median "${READY[@]}")" "$(bench_p90 "${READY[@]}")"
bench_row "\`hutch stop\` (agent POWEROFF → QEMU reaped → reply)" "$hp" "$(bench_p90 "${HP[@]}")"
echo
c0=$(bench_median "${C0[@]}")
c1=$(bench_median "${C1[@]}")
c2=$(bench_median "${C2[@]}")
ch=$(bench_median "${CH[@]}")
echo "CPU time (user+sys, medians), which other load on the host barely moves. Floors: the QEMU"
echo "process to its exit. hutch: QEMU up to HELLO + the monitor up to HELLO + the \`start\` and"
echo "\`stop\` CLIs (QEMU's and the monitor's CPU during the stop itself is not counted: a few ms)."
echo
bench_header "what" "CPU ms" "ratio to floor"
bench_row "floor: raw microvm, tiny init" "$c0" "1.00"
bench_row "+ hutch's devices and sandbox" "$c1" "$(bench_ratio "$c1" "$c0")"
bench_row "+ hutch's initramfs unpacked" "$c2" "$(bench_ratio "$c2" "$c0")"
bench_row "**hutch start + stop**, total" "$ch" "**$(bench_ratio "$ch" "$c0")**"
bench_row "… of which QEMU (to HELLO)" "$(bench_median "${CQ[@]}")" "$(bench_ratio "$(bench_median "${CQ[@]}")" "$c0")"
bench_row "… of which the monitor" "$(bench_median "${CM[@]}")" "–"
bench_row "… of which the \`start\` and \`stop\` CLIs" "$(bench_median "${CC[@]}")" "–"
bench_summary "boot, CPU time (P1)" "$ch ms CPU" "raw QEMU microvm $c0 ms CPU" "$(bench_ratio "$ch" "$c0")" "–"
echo
bench_load_note
