#!/usr/bin/env bash
# once
# The agent can go away and come back (issue 17), on micro VMs: the monitor knows whether the agent
# is there, sessions never hang, and a new agent is a new start. The cloud image (the agent as a
# systemd service: stop, restart, SIGSTOP) is in 95-cloud.sh (L1-L4).
#
#   1  a VM paused through QMP (its own socket, qmp-user.sock): the agent is unresponsive at once,
#      exec fails fast naming the state, an open session ends with 255; after cont exec works again
#   2  a guest kernel panic: the monitor sees QEMU exit, a running exec ends with 255, and the
#      recorded exit reason says the guest reset
#   3  hostile-agent mute (says HELLO, then never answers, like SIGSTOP): on a quiet agent a ping
#      bounds the first exec (exit 1, unresponsive), the next fails at once; stop skips the agent
#   4  hostile-agent flap (the port closes under a session, then a new agent opens it): the session
#      ends with 255 and the message, inspect says gone with why, exec fails fast naming the state,
#      then the new agent's HELLO makes it ready and new sessions work; run --rm exits 255 and
#      removes its instance
. "$(dirname "$0")/lib.sh"
exec </dev/null

section()
{
	diag "---- $* ---- (${SECONDS}s)"
}

# inspect_field NAME KEY: KEY from inspect --json ("" when not running).
inspect_field()
{
	json_get "$(hutch inspect "$1" --json 2>/dev/null)" "j.get('$2', '')" 2>/dev/null
}
agent_is()
{
	[ "$(inspect_field "$1" agent)" = "$2" ]
}
sessions_are()
{
	[ "$(inspect_field "$1" sessions)" = "$2" ]
}

# qmp NAME COMMAND: one QMP command on the VM's own QMP socket; prints QEMU's reply to it.
qmp()
{
	python3 - "$HUTCH_HOME/run/$1/qmp-user.sock" "$2" <<'EOF'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
f = s.makefile("rw")
json.loads(f.readline())  # greeting
for cmd in ("qmp_capabilities", sys.argv[2]):
    f.write(json.dumps({"execute": cmd}) + "\n")
    f.flush()
    while True:
        msg = json.loads(f.readline())
        if "return" in msg or "error" in msg:
            break
print(json.dumps(msg))
EOF
}

vm_gone()
{
	[ -z "$(monitor_pid "$1")" ] && [ -z "$(pids_of_home "qemu-system.*-name $1,")" ]
}

# bg_exec TAG NAME ARGS...: hutch exec in the background; its status lands in $T/TAG.rc.
bg_exec()
{
	local tag=$1
	shift
	(
		hutch exec "$@" >"$T/$tag.out" 2>"$T/$tag.err"
		echo $? >"$T/$tag.rc"
	) &
}

# ==== 1: paused through QMP ====
section "pause"
run hutch create p --template micro
is "$RC" 0 "create p"
run hutch start p
is "$RC" 0 "start p"
ok "the VM has its own QMP socket" test -S "$HUTCH_HOME/run/p/qmp-user.sock"
is "$(inspect_field p agent)" ready "inspect: the agent is ready"

run qmp p stop
contains "$OUT" '"return"' "QMP stop on qmp-user.sock"
ok "inspect: the agent is unresponsive once the VM is paused" wait_until 30 agent_is p unresponsive
run hutch inspect p
like "$OUT" '^agent: +unresponsive for [0-9]+s \(the VM is paused\)$' "inspect says since when and why"
run hutch exec p -- true
is "$RC" 1 "exec on the paused VM exits 1 (not a hang)"
like "$ERR" "the guest agent in 'p' is unresponsive .*the VM is paused.*resume it \(QMP 'cont'\)" \
	"the error names the state and what to try"
run qmp p cont
contains "$OUT" '"return"' "QMP cont"
ok "inspect: ready again after cont" wait_until 60 agent_is p ready
run hutch exec p -- echo back
is "$RC:$OUT" "0:back" "exec works again after cont"

# a session open while the VM is paused ends (255), and the program is not lost track of
bg_exec paused p -- sh -c 'sleep 30; echo done'
ok "the session is open" wait_until 60 sessions_are p 1
run qmp p stop
ok "the open session ends while the VM is paused" wait_until 60 test -s "$T/paused.rc"
is "$(cat "$T/paused.rc" 2>/dev/null)" 255 "exec of a session on a paused VM exits 255"
like "$(cat "$T/paused.err")" "the guest agent in 'p' stopped answering \(the VM is paused\) while 'sh' was running; its result is unknown" \
	"its message says what happened and that the result is unknown"
run qmp p cont
ok "ready again after cont" wait_until 60 agent_is p ready
run hutch exec p -- echo again
is "$RC:$OUT" "0:again" "a new exec works after cont"
ok "the hung-up program's session is gone once the agent reads again" wait_until 60 sessions_are p 0

# ==== 2: a guest kernel panic (the agent is PID 1 in micro) ====
section "panic"
run hutch exec p -- sh -c 'echo c >/proc/sysrq-trigger; sleep 60'
is "$RC" 255 "exec that panics the guest kernel exits 255"
like "$ERR" "the VM 'p' went down while 'sh' was running \(the guest reset: a reboot or a kernel panic, see 'hutch logs p'\); its result is unknown" \
	"the message says the VM went down and why"
run hutch list -a
like "$OUT" '^p +stopped' "list -a right after exec returned: p is stopped (exec waits for the monitor to finish)"
ok "no monitor or QEMU left for p" wait_until 30 vm_gone p
run hutch inspect p --json
like "$(json_get "$OUT" 'j["last"]["last_exit_reason"]')" 'the guest reset: a reboot or a kernel panic' \
	"inspect: the recorded exit reason says the guest reset"

# ==== 3 and 4: hostile agents ====
# Their own template cache: the micro initramfs is built around HUTCH_AGENT.
use_hostile_agent
for m in mute flap; do
	printf 'h%s:\n  cmdline: hutch.hostile=%s\n' "$m" "$m" >"$T/h$m.yml"
	run hutch create "h$m" --from "$T/h$m.yml"
	is "$RC" 0 "create h$m (hutch.hostile=$m)"
done
for m in mute flap; do
	(
		hutch start "h$m" >"$T/start.$m.out" 2>"$T/start.$m.err"
		echo $? >"$T/start.$m.rc"
	) &
done
wait

section "mute"
is "$(cat "$T/start.mute.rc")" 0 "mute: start succeeds (the agent said HELLO)"
sleep 6 # quiet past the ping threshold (5 s): the next exec asks the agent first
run hutch exec hmute -- true
is "$RC" 1 "mute: the first exec exits 1 once the ping goes unanswered (bounded, no hang)"
like "$ERR" "the guest agent in 'hmute' is unresponsive .*no answer to a ping within [0-9]+ s" \
	"mute: the error names the state and why"
is "$(inspect_field hmute agent)" unresponsive "mute: inspect says unresponsive"
run hutch exec hmute -- true
is "$RC" 1 "mute: the next exec exits 1 too"
like "$ERR" "is unresponsive" "mute: ... naming the state"
run hutch stop hmute --json
is "$RC" 0 "mute: stop works"
unlike "$(json_get "$OUT" 'j["method"]')" '^agent$' "mute: stop did not end on the agent step"
ok "mute: nothing left" wait_until 30 vm_gone hmute

section "flap"
is "$(cat "$T/start.flap.rc")" 0 "flap: start succeeds"
run hutch exec hflap -- flap 15
is "$RC" 255 "flap: the session whose agent went away exits 255"
like "$ERR" "the guest agent in 'hflap' went away while 'flap' was running; its result is unknown" \
	"flap: the message says the agent went away and the result is unknown"
run hutch inspect hflap --json
is "$(json_get "$OUT" 'j["agent"]+" / "+j["agent_why"]')" "gone / the guest closed the agent port" \
	"flap: inspect says gone, and why"
run hutch list --json
is "$(json_get "$OUT" '[v.get("agent") for v in j if v["name"]=="hflap"][0]')" gone "flap: list --json says gone"
run hutch exec hflap -- true
is "$RC" 1 "flap: exec while the agent is gone exits 1"
like "$ERR" "the guest agent in 'hflap' is gone \(for [0-9]+ s: the guest closed the agent port\); see 'hutch logs hflap'" \
	"flap: ... at once, naming the state, why and what to try"
ok "flap: a new agent says HELLO: ready" wait_until 90 agent_is hflap ready
run hutch inspect hflap --json
is "$(json_get "$OUT" 'j["agent_why"]')" "a new agent said HELLO" "flap: inspect says why it is ready"
run hutch exec hflap -- echo new
is "$RC:$OUT" "0:new" "flap: a new exec works on the new agent"
run hutch exec hflap -- sh -c 'exit 7'
is "$RC" 7 "flap: and returns its program's status"
run hutch stop hflap
is "$RC" 0 "flap: stop works"
ok "flap: nothing left" wait_until 30 vm_gone hflap

# run --rm: the program's agent goes away; run exits 255 and removes its instance as usual. Cold:
# the hostile agent's flap mode only answers PING and EXEC, not the HELLO query a warm clone gets.
section "run --rm"
run hutch run --rm --cold hflap -- flap 2
is "$RC" 255 "run --rm: a program whose agent went away exits 255"
like "$ERR" "the guest agent in 'hflap-[0-9a-f]+' went away while 'flap' was running; its result is unknown" \
	"run --rm: ... with the message"
instances()
{
	local d n=0
	for d in "$HUTCH_HOME"/data/vms/hflap-*/; do
		[ -d "$d" ] && n=$((n + 1))
	done
	echo "$n"
}
is "$(instances)" 0 "run --rm: the disposable instance is removed"

ok "no QEMU left for this HUTCH_HOME" wait_until 30 no_qemu
done_testing
