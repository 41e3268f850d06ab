#!/usr/bin/env bash
# once
# hutch run: disposable instances (run --rm) that leave nothing behind, even when the CLI is
# SIGKILLed; start on demand; and the auto_shutdown policies on_app_exit (also with a launcher
# that forks and exits) and idle.
. "$(dirname "$0")/lib.sh"
exec </dev/null

cat >"$T/vms.yml" <<'EOF'
idl:
  source: {template: micro}
  auto_shutdown: {idle: 4}
app:
  source: {template: micro}
  auto_shutdown: {on_app_exit: true}
od:
  source: {template: micro}
EOF
for v in idl app od; do
	run hutch create "$v" --from "$T/vms.yml"
	is "$RC" 0 "create $v --from a spec with auto_shutdown"
done

# The idle VM boots first and is then left alone (nothing here talks to its monitor) while the
# rest runs. Its idle clock starts when it is up: booting is not idleness, so a VM whose boot takes
# longer than `idle` (on TCG every boot does, for idle: 4) must still be usable right after start.
run hutch start idl
is "$RC" 0 "start idl (auto_shutdown.idle: 4)"
run hutch exec idl -- true
is "$RC" 0 "idle: idl is usable right after start (boot time is not idle time)"

# instance_left: anything of a micro-* disposable instance still around: VM, files, processes.
instance_left()
{
	hutch list -a 2>/dev/null | grep -E '^micro-'
	find "$HUTCH_HOME/data/vms" "$HUTCH_HOME/run" -maxdepth 1 -name '*micro-*' 2>/dev/null
	pids_of_home "__monitor micro-"
	pids_of_home "qemu-system.*-name micro-"
}
nothing_left()
{
	[ -z "$(instance_left)" ]
}

# ---- run --rm: the README demo ----
run hutch run --rm micro -- uname -a
is "$RC" 0 "run --rm micro -- uname -a exits 0"
like "$OUT" '^Linux micro-' "it prints Linux and the instance's hostname"
inst=$(printf '%s\n' "$OUT" | awk '{print $2}')
# The monitor releases the lock (the VM is stopped) as its last act, then its process exits: a
# bounded wait covers that last moment.
if wait_until 10 nothing_left; then
	pass "run --rm left nothing behind (list -a, data/vms, run/, monitor, QEMU)"
else
	fail "run --rm left nothing behind (list -a, data/vms, run/, monitor, QEMU)" "$(instance_left)"
fi
ok "no trace of $inst in HUTCH_HOME" test -z "$(find "$HUTCH_HOME" -name "*$inst*" 2>/dev/null)"

run hutch run --rm micro -- sh -c 'echo out; echo err >&2; exit 9'
is "$RC" 9 "run --rm passes the program's exit status through"
is "$OUT" "out" "run --rm: stdout"
like "$ERR" '^err$' "run --rm: stderr"
ok "run --rm with a failing program left nothing behind" wait_until 10 nothing_left

# ---- run --rm with the CLI SIGKILLed: the monitor still destroys the instance ----
"$HUTCH" run --rm micro -- sh -c 'echo started; exec sleep 60' >"$T/kill.out" 2>"$T/kill.err" &
cli=$!
if wait_until 90 grep -q started "$T/kill.out"; then
	pass "run --rm -- sleep 60 is running in its instance"
	kill -9 "$cli"
	wait "$cli" 2>/dev/null
	if wait_until 60 nothing_left; then
		pass "after SIGKILL of the CLI the instance is destroyed (VM, files, monitor, QEMU)"
	else
		fail "after SIGKILL of the CLI the instance is destroyed (VM, files, monitor, QEMU)" \
			"still there after 60 s:" "$(instance_left)"
	fi
else
	kill -9 "$cli" 2>/dev/null
	fail "run --rm -- sleep 60 is running in its instance" "$(cat "$T/kill.err")"
	fail "after SIGKILL of the CLI the instance is destroyed (VM, files, monitor, QEMU)"
fi

# ---- run NAME on a stopped VM starts it and leaves it running ----
run hutch run od -- echo hello-od
is "$RC" 0 "run od on a stopped VM exits 0"
is "$OUT" "hello-od" "run od started it on demand and ran the program"
run hutch list
like "$OUT" '^od +running' "od is left running after run"
run hutch run od -- sh -c 'exit 4'
is "$RC" 4 "run on a running VM passes the exit status through"
run hutch stop od
is "$RC" 0 "stop od"

# stopped NAME: list -a shows NAME stopped.
stopped()
{
	hutch list -a 2>/dev/null | grep -Eq "^$1 +stopped"
}

# ---- on_app_exit ----
run hutch run app -- true
is "$RC" 0 "run app -- true exits 0"
ok "on_app_exit: app stops by itself after its app exits" wait_until 60 stopped app

# The launcher forks a grandchild and exits at once: run must wait for the grandchild (the app's
# lifetime is its session), and only then may on_app_exit stop the VM.
run hutch run app -- sh -c '(sleep 4; echo grandchild-done >/dev/console) </dev/null >/dev/null 2>&1 & exit 0'
is "$RC" 0 "run app with a fork-and-exit launcher exits 0"
run hutch logs app
contains "$OUT" "grandchild-done" "run returned only after the launcher's grandchild finished"
ok "on_app_exit with a launcher: app stops by itself after the grandchild" wait_until 60 stopped app

# ---- idle ----
# Polled by process, not with `hutch list`, which talks to the monitor.
no_monitor()
{
	[ -z "$(monitor_pid "$1")" ]
}
ok "idle: idl stops by itself with no sessions" wait_until 90 no_monitor idl
run hutch list -a
like "$OUT" '^idl +stopped' "idle: list -a shows idl stopped"

# Watching with `hutch list` is not activity: it must not keep an idle VM up.
run hutch start idl
is "$RC" 0 "start idl again"
run hutch exec idl -- true
is "$RC" 0 "exec in idl after the second start"
if [ "$RC" -eq 0 ]; then
	ok "idle: idl stops by itself while 'hutch list' polls it" wait_until 40 stopped idl
else
	pass "idle: idl stops by itself while 'hutch list' polls it # SKIP idl was not up"
fi

ok "no QEMU left for this HUTCH_HOME" wait_until 30 no_qemu

done_testing
