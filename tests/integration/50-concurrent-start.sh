#!/usr/bin/env bash
# Ten `hutch start` at once on one VM: exactly one wins, the others fail "already running" or
# "busy" within a bounded time, and exactly one QEMU runs.
. "$(dirname "$0")/lib.sh"

N=10
run hutch create race --template micro
is "$RC" 0 "create race"

pids=()
for i in $(seq $N); do
	hutch start race >"$T/start.$i.out" 2>"$T/start.$i.err" &
	pids+=($!)
done
won=0
lost=0
other=0
for i in $(seq $N); do
	wait "${pids[$((i - 1))]}"
	rc=$?
	if [ $rc -eq 0 ] && grep -q '^started race' "$T/start.$i.out"; then
		won=$((won + 1))
	elif { [ $rc -eq 3 ] && grep -q 'already running' "$T/start.$i.err"; } ||
		{ [ $rc -eq 1 ] && grep -q 'busy' "$T/start.$i.err"; }; then
		lost=$((lost + 1))
	else
		other=$((other + 1))
		diag "start #$i: exit $rc" "$(cat "$T/start.$i.out" "$T/start.$i.err")"
	fi
done
is "$won" 1 "exactly one of $N parallel starts succeeds"
is "$lost" $((N - 1)) "the other $((N - 1)) fail with 'already running' or 'busy'"
is "$other" 0 "no start ends any other way"
is "$(qemu_count)" 1 "exactly one QEMU for this HUTCH_HOME"
is "$(monitor_pid race | grep -c .)" 1 "exactly one monitor"

run hutch list
like "$OUT" '^race +running' "list shows race running"

# Parallel stops on the running VM: each one either stops it, finds it not running, or fails
# "busy"; none hangs or errors out in any other way.
pids=()
for i in 1 2 3; do
	hutch stop race >"$T/stop.$i.out" 2>"$T/stop.$i.err" &
	pids+=($!)
done
stopped=0
bad=0
for i in 1 2 3; do
	wait "${pids[$((i - 1))]}"
	rc=$?
	if [ $rc -eq 0 ] && grep -q '^stopped race' "$T/stop.$i.out"; then
		stopped=$((stopped + 1))
	elif [ $rc -eq 0 ] && grep -q 'not running' "$T/stop.$i.out" "$T/stop.$i.err"; then
		:
	elif [ $rc -eq 1 ] && grep -Eq 'busy|not running' "$T/stop.$i.err"; then
		:
	else
		bad=$((bad + 1))
		diag "stop #$i: exit $rc" "$(cat "$T/stop.$i.out" "$T/stop.$i.err")"
	fi
done
ok "at least one of 3 parallel stops reports stopped" test "$stopped" -ge 1
is "$bad" 0 "every parallel stop says stopped, not running or busy"
ok "no QEMU after the stops" wait_until 30 no_qemu

done_testing
