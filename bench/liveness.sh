#!/bin/bash
# bench/liveness.sh (issue 17): what knowing whether the agent is there costs, and how soon a
# stuck agent is noticed, on a micro VM. Prints medians; asserts nothing.
#   1  `hutch exec d -- true` on an agent heard from within 5 s (sent at once) against one quiet for
#      longer (the monitor pings it first and holds the EXEC until the PONG): the ratio is the
#      liveness check's cost on the first exec after a pause
#   2  the VM paused through its QMP socket (qmp-user.sock): from `stop` returning to the CLI's error
#      for a session that was running (exit 255), and for a new exec (exit 1, fails fast)
#   BENCH_EXEC_RUNS  samples for 1 (default 20; each quiet sample waits 6 s)
. "$(dirname "$0")/lib.sh"
bench_init "$@"

N=${BENCH_EXEC_RUNS:-20}
NP=$BENCH_RUNS

bench_hutch_or_die create d --template micro
bench_hutch_or_die start d
QMP_SOCK=$HUTCH_HOME/run/d/qmp-user.sock

# qmp CMD: one QMP command on the VM's own socket; returns when QEMU answered it.
qmp() {
	python3 - "$QMP_SOCK" "$1" <<'EOF' >/dev/null || bench_die "QMP $1 on $QMP_SOCK failed"
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
f = s.makefile("rw")
f.readline()
for cmd in ("qmp_capabilities", sys.argv[2]):
    f.write(json.dumps({"execute": cmd}) + "\n")
    f.flush()
    while True:
        msg = json.loads(f.readline())
        if "error" in msg:
            sys.exit(1)  # bench_die names the command
        if "return" in msg:
            break
EOF
}

agent_state() {
	"$HUTCH" inspect d --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get("agent",""))'
}

wait_ready() {
	local i
	for ((i = 0; i < 300; i++)); do
		[ "$(agent_state)" = ready ] && return 0
		sleep 0.1
	done
	bench_die "the agent did not come back"
}

# ---- 1: exec on a fresh vs a quiet agent ----
FRESH=() QUIET=()
bench_hutch_or_die exec d -- true # warm-up
for ((i = 0; i < N; i++)); do
	bench_time "$HUTCH" exec d -- true || bench_die "exec failed"
	FRESH+=("$ELAPSED_MS")
	sleep 6 # past the 5 s the monitor trusts a silent agent
	bench_time "$HUTCH" exec d -- true || bench_die "exec failed"
	QUIET+=("$ELAPSED_MS")
done

# ---- 2: pause detection ----
OPEN=() NEW=()
for ((i = 0; i < NP; i++)); do
	wait_ready
	"$HUTCH" exec d -- sleep 60 >/dev/null 2>"$BENCH_TMP/open.err" &
	pid=$!
	sleep 1
	qmp stop
	bench_now
	t0=$NOW_US
	wait "$pid"
	rc=$?
	bench_now
	[ "$rc" = 255 ] || bench_die "the open session ended with $rc, not 255: $(cat "$BENCH_TMP/open.err")"
	OPEN+=("$(bench_us_to_ms $((NOW_US - t0)))")
	bench_time "$HUTCH" exec d -- true 2>/dev/null
	rc=$?
	[ "$rc" = 1 ] || bench_die "exec on the paused VM exited $rc, not 1"
	NEW+=("$ELAPSED_MS")
	qmp cont
done
wait_ready

bench_title "Agent liveness (issue 17): micro VM, $(bench_accel)"
echo "exec on an agent heard from within 5 s goes out at once; on a quieter one the monitor pings first and holds the EXEC until the PONG. $N samples each."
echo
bench_header "exec d -- true" "p50 ms" "p90 ms" "ratio (p50)"
bench_row "agent heard within 5 s" "$(bench_median "${FRESH[@]}")" "$(bench_p90 "${FRESH[@]}")" "1.00"
bench_row "agent quiet for 6 s (ping first)" "$(bench_median "${QUIET[@]}")" "$(bench_p90 "${QUIET[@]}")" \
	"$(bench_ratio "$(bench_median "${QUIET[@]}")" "$(bench_median "${FRESH[@]}")")"
echo
echo "The VM paused with QMP \`stop\` on qmp-user.sock: time from \`stop\` returning to the CLI's error. $NP samples."
echo
bench_header "after QMP stop" "p50 ms" "max ms"
bench_row "open session ends (exit 255)" "$(bench_median "${OPEN[@]}")" "$(bench_max "${OPEN[@]}")"
bench_row "new exec refused (exit 1)" "$(bench_median "${NEW[@]}")" "$(bench_max "${NEW[@]}")"
bench_load_note
bench_summary "exec on a quiet agent (ping first)" "$(bench_median "${QUIET[@]}") ms" \
	"$(bench_median "${FRESH[@]}") ms (agent heard within 5 s)" \
	"$(bench_ratio "$(bench_median "${QUIET[@]}")" "$(bench_median "${FRESH[@]}")")" "-"
