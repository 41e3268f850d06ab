#!/usr/bin/env bash
# kill -9 of the monitor: QEMU dies with it (PR_SET_PDEATHSIG), list shows stopped, and the next
# start works with no manual cleanup. A stale pid that now belongs to an unrelated process is never
# signalled. Also: kill -9 of QEMU makes its monitor exit, and stop --force.
. "$(dirname "$0")/lib.sh"

# gone PID: the process no longer runs (absent, or a zombie nobody has reaped yet).
gone()
{
	[ ! -e "/proc/$1" ] || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]
}
alive()
{
	kill -0 "$1" 2>/dev/null && ! gone "$1"
}

# An unrelated process of the same user, standing in for whatever reuses a dead monitor's pid.
sleep 3600 &
bystander=$!

run hutch create k --template micro
run hutch start k
is "$RC" 0 "start k"
mon=$(monitor_pid k)
qemu=$(qemu_pids)
is "$(echo "$mon" | grep -c .)" 1 "exactly one monitor process for k (pgrep -f '__monitor k')"
is "$(echo "$qemu" | grep -c .)" 1 "exactly one QEMU for k"
ok "QEMU's parent is the monitor" test "$(awk '{print $4}' "/proc/$qemu/stat" 2>/dev/null)" = "$mon"

kill -9 "$mon"
ok "the monitor is gone after kill -9" wait_until 30 gone "$mon"
ok "QEMU dies with its monitor" wait_until 30 gone "$qemu"
is "$(qemu_count)" 0 "no QEMU left for this HUTCH_HOME"

run hutch list -a
like "$OUT" '^k +stopped' "list -a shows k stopped after the monitor died"
run hutch list
unlike "$OUT" '^k ' "list does not show k as running"

# Whatever pid files the dead monitor left behind now name the bystander: the next start, stop
# and destroy must not signal it. (Running is decided by the lock, never by a pid.)
for f in $(grep -rlE "\\b($mon|$qemu)\\b" "$HUTCH_HOME" 2>/dev/null); do
	sed -i -E "s/\\b($mon|$qemu)\\b/$bystander/g" "$f"
done

run hutch start k
is "$RC" 0 "start after kill -9 of the monitor works without cleanup"
like "$OUT" '^started k' "it prints started"
is "$(qemu_count)" 1 "one QEMU runs again"
ok "the bystander survived start" alive "$bystander"

# The other direction: QEMU killed under the monitor. The monitor notices, records it and exits.
mon=$(monitor_pid k)
qemu=$(qemu_pids)
kill -9 "$qemu"
ok "the monitor exits when QEMU is killed" wait_until 30 gone "$mon"
run hutch list -a
like "$OUT" '^k +stopped' "list -a shows k stopped after QEMU was killed"
ok "the runtime sockets are cleaned up" wait_until 10 test ! -e "$HUTCH_HOME/run/k/monitor.sock"

run hutch start k
is "$RC" 0 "start after kill -9 of QEMU works"

run hutch stop --force k
is "$RC" 0 "stop --force exits 0"
like "$OUT" '^stopped k' "stop --force prints stopped"
ok "stop --force leaves no QEMU" wait_until 30 no_qemu
run hutch stop --force k
is "$RC" 0 "stop --force on a stopped VM exits 0"
like "$OUT$ERR" 'not running' "stop --force on a stopped VM says not running"

run hutch destroy --force k
is "$RC" 0 "destroy"
ok "the bystander was never signalled" alive "$bystander"
kill "$bystander"

done_testing
