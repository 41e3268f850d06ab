#!/usr/bin/env bash
# timeout: 900
# The agent can go away and come back (issue 17), on a real Debian 12 cloud VM where the agent is
# the systemd service hutch-agent. One boot serves every case. The events come from a systemd timer in the
# guest (set through exec, firing 2 s later, writing the guest's clock to /run/hutch-event first);
# what the agent cannot do while it is away is done over `hutch ssh`, which does not need it.
#
#   1  the agent is stopped (systemd-run --on-active=2, as a user would): an exec already running
#      ends with 255 and the message, inspect and list say gone (with why), a new exec fails fast
#      (exit 1) naming the state and the restart command; started again, exec works
#   2  the agent is restarted with a session open: the session ends with 255 and the message, a new
#      exec works at once, and nothing of the old session shows up in a new one
#   3  the agent gets SIGSTOP, then SIGCONT: an open session ends (255) once a ping goes unanswered,
#      inspect says unresponsive, a new exec fails fast; after SIGCONT ready, exec works
#   4  stop with the agent gone skips the agent step (the spec's stop_timeout bounds ACPI)
#
# Each case reports, as a diag line, how long after the guest event the CLI gave its error (the
# guest's clock, corrected by its offset from the host's measured through exec; not asserted).
#
# The image comes from tests/fixtures/debian-image.sh (see 95-cloud.sh): run.sh passes its directory
# as HUTCH_DEBIAN_IMAGE_DIR. Without it this test reports SKIP.
. "$(dirname "$0")/lib.sh"
exec </dev/null

here=$(cd "$(dirname "$0")" && pwd)
IMG=debian-12-hutch-amd64.qcow2
SECTIONS="boot stop restart sigstop stop-ladder"
BOOT_TIMEOUT=600

. "$here/cloud.sh"
cloud_fixture
cloud_serve "$T/requests.log"

agent_field()
{
	hutch inspect ac --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1],""))' "$1" 2>/dev/null
}
agent_is()
{
	[ "$(agent_field agent)" = "$1" ]
}
sessions_are()
{
	[ "$(agent_field sessions)" = "$1" ]
}

now()
{
	date +%s.%N
}

# bg_exec TAG ARGS...: hutch exec ac ARGS in the background; status in $T/TAG.rc, and when it
# ended in $T/TAG.t.
bg_exec()
{
	local tag=$1
	shift
	(
		hutch exec ac "$@" >"$T/$tag.out" 2>"$T/$tag.err"
		echo $? >"$T/$tag.rc"
		now >"$T/$tag.t"
	) &
}

# guest CMD...: as root in the guest over ssh (it does not need the agent).
guest()
{
	run hutch ssh ac -- sudo -n "$@"
}

# schedule CMD: run CMD as root in the guest 2 s from now, from a systemd timer (so the exec that
# sets it up is over by then), after writing the guest's clock to /run/hutch-event. Also measures
# the guest clock's offset from the host's (OFFSET, s) through an exec.
schedule()
{
	local h0 g h1
	h0=$(now)
	g=$(hutch exec ac -- date +%s.%N)
	h1=$(now)
	OFFSET=$(python3 -c 'import sys; h0,g,h1=map(float,sys.argv[1:4]); print(g-(h0+h1)/2)' "$h0" "$g" "$h1")
	run hutch exec ac -- rm -f /run/hutch-event
	# a timer's default accuracy is a minute: ask for 100 ms
	run hutch exec ac -- systemd-run --quiet --on-active=2 --timer-property=AccuracySec=100ms \
		sh -c "date +%s.%N >/run/hutch-event; $1"
}

# event_done: the scheduled event has happened (asked over ssh: the agent may be away).
event_done()
{
	hutch ssh ac -- test -s /run/hutch-event 2>/dev/null
}

# latency WHAT TFILE: how long after the scheduled event (its guest time, in host time) the CLI
# gave its error, whose host time is in TFILE. Diag only.
latency()
{
	local t g
	t=$(cat "$2" 2>/dev/null) || return 0
	g=$(hutch ssh ac -- cat /run/hutch-event 2>/dev/null) || return 0
	diag "$(python3 -c 'import sys; g,o,e=map(float,sys.argv[2:5]); print("latency, %s: the CLI error came %.2f s after the guest event" % (sys.argv[1], e-(g-o)))' "$1" "$g" "$OFFSET" "$t")"
}

# ==== boot ====
section "create and start ac"
cat >"$T/ac.yml" <<EOF
ac:
  source:
    image: $base/files/$IMG
    checksum: sha256:$base/files/SHA256SUMS
  disk: 8G
  ssh: {key: generate}
  stop_timeout: 10
EOF
run hutch create ac --from "$T/ac.yml"
is "$RC" 0 "create ac (stop_timeout: 10)"
HUTCH_CMD_TIMEOUT=$((BOOT_TIMEOUT + 30)) run hutch start --timeout "$BOOT_TIMEOUT" ac
is "$RC" 0 "start ac"
if [ "$RC" -ne 0 ]; then
	done_testing
	exit 1
fi
is "$(agent_field agent)" ready "the agent is ready"
run hutch exec ac -- systemctl is-active hutch-agent.service
is "$OUT" active "the agent runs as the systemd service hutch-agent"

# ==== 1: the agent is stopped ====
section "the agent is stopped"
bg_exec s1 -- sh -c 'sleep 60; echo done'
ok "1: a session is open" wait_until 60 sessions_are 1
schedule "systemctl stop hutch-agent"
is "$RC" 0 "1: systemctl stop hutch-agent, in 2 s (systemd-run, through exec)"
ok "1: the open exec returns" wait_until 60 test -s "$T/s1.rc"
is "$(cat "$T/s1.rc" 2>/dev/null)" 255 "1: the exec that was running exits 255"
like "$(cat "$T/s1.err")" "the guest agent in 'ac' went away while 'sh' was running; its result is unknown" \
	"1: its message says the agent went away and the result is unknown"
latency "stopped agent" "$T/s1.t"
ok "1: inspect says gone" wait_until 30 agent_is gone
is "$(agent_field agent_why)" "the guest closed the agent port" "1: inspect --json says why"
run hutch inspect ac
like "$OUT" '^agent: +gone for [0-9]+s \(the guest closed the agent port\)$' "1: inspect says since when and why"
run hutch list
like "$OUT" '^ac +running +[a-z]+ .* gone ' "1: list shows the agent gone"
t=$(now)
run hutch exec ac -- true
is "$RC" 1 "1: exec on a gone agent exits 1 (at once, not a hang)"
like "$ERR" "the guest agent in 'ac' is gone \(for [0-9]+ s: the guest closed the agent port\); restart it with 'hutch ssh ac -- sudo systemctl restart hutch-agent'" \
	"1: the error names the state and the command that restarts the agent"
diag "1: exec on the gone agent failed in $(python3 -c 'import sys,time; print("%.2f" % (time.time()-float(sys.argv[1])))' "$t") s"
guest systemctl start hutch-agent
is "$RC" 0 "1: systemctl start hutch-agent"
ok "1: ready again" wait_until 60 agent_is ready
run hutch exec ac -- echo back
is "$RC:$OUT" "0:back" "1: exec works again"

# ==== 2: the agent is restarted with a session open ====
section "the agent is restarted"
bg_exec s2 -- sh -c 'sleep 20; echo done'
ok "2: a session is open" wait_until 60 sessions_are 1
schedule "systemctl restart hutch-agent"
is "$RC" 0 "2: systemctl restart hutch-agent, in 2 s"
ok "2: the open exec returns" wait_until 60 test -s "$T/s2.rc"
is "$(cat "$T/s2.rc" 2>/dev/null)" 255 "2: the session whose agent restarted exits 255"
like "$(cat "$T/s2.err")" "the guest agent in 'ac' went away while 'sh' was running; its result is unknown" \
	"2: ... with the message"
unlike "$(cat "$T/s2.out")" 'done' "2: its program did not finish (systemd killed it with the agent)"
latency "restarted agent" "$T/s2.t"
ok "2: the new agent is ready" wait_until 60 agent_is ready
run hutch exec ac -- echo fresh
is "$RC:$OUT" "0:fresh" "2: a new exec works"
is "$(agent_field agent_why)" "a new agent said HELLO" "2: inspect: a new agent said HELLO"
sleep 22 # past the old program's end: none of it may reach a new session
run hutch exec ac -- cat /dev/null
is "$RC:$OUT" "0:" "2: a new session gets nothing of the old one"

# ==== 3: SIGSTOP, then SIGCONT ====
section "the agent gets SIGSTOP"
bg_exec s3 -- sh -c 'sleep 120; echo done'
ok "3: a session is open" wait_until 60 sessions_are 1
schedule "systemctl kill --kill-whom=main -s SIGSTOP hutch-agent"
is "$RC" 0 "3: SIGSTOP to the agent in 2 s (systemctl kill --kill-whom=main)"
ok "3: the open exec returns (a ping went unanswered)" wait_until 90 test -s "$T/s3.rc"
is "$(cat "$T/s3.rc" 2>/dev/null)" 255 "3: the session on the stopped agent exits 255"
like "$(cat "$T/s3.err")" "the guest agent in 'ac' stopped answering \(no answer to a ping within [0-9]+ s\) while 'sh' was running; its result is unknown" \
	"3: ... with the message"
latency "SIGSTOPped agent, session open" "$T/s3.t"
is "$(agent_field agent)" unresponsive "3: inspect says unresponsive"
t=$(now)
run hutch exec ac -- true
is "$RC" 1 "3: exec on the unresponsive agent exits 1"
like "$ERR" "the guest agent in 'ac' is unresponsive .*restart it with 'hutch ssh ac -- sudo systemctl restart hutch-agent'" \
	"3: ... naming the state and what to try"
diag "3: exec on the unresponsive agent failed in $(python3 -c 'import sys,time; print("%.2f" % (time.time()-float(sys.argv[1])))' "$t") s"
guest systemctl kill --kill-whom=main -s SIGCONT hutch-agent
is "$RC" 0 "3: SIGCONT to the agent"
ok "3: ready again" wait_until 60 agent_is ready
run hutch exec ac -- echo cont
is "$RC:$OUT" "0:cont" "3: exec works after SIGCONT"
ok "3: the hung-up program's session is gone" wait_until 60 sessions_are 0

# A quiet, stopped agent with no session open: the first exec is bounded by a ping.
schedule "systemctl kill --kill-whom=main -s SIGSTOP hutch-agent"
ok "3b: SIGSTOP to the agent, with no session open" wait_until 60 event_done
sleep 6 # quiet past the ping threshold (5 s)
t=$(now)
bg_exec s4 -- true
ok "3b: exec on a stopped, quiet agent returns (bounded by a ping)" wait_until 60 test -s "$T/s4.rc"
is "$(cat "$T/s4.rc" 2>/dev/null)" 1 "3b: ... with exit 1"
like "$(cat "$T/s4.err")" "is unresponsive \(for [0-9]+ s: no answer to a ping" "3b: ... naming the state"
diag "latency, SIGSTOPped quiet agent: a new exec failed $(python3 -c 'import sys; print("%.2f" % (float(sys.argv[2])-float(sys.argv[1])))' "$t" "$(cat "$T/s4.t")") s after it began"
guest systemctl kill --kill-whom=main -s SIGCONT hutch-agent
ok "3b: ready again" wait_until 60 agent_is ready

# ==== 4: stop with the agent gone ====
section "stop with the agent gone"
guest systemctl stop hutch-agent
ok "4: gone" wait_until 30 agent_is gone
run hutch stop ac --json
is "$RC" 0 "4: stop exits 0"
unlike "$(json_get "$OUT" 'j["method"]')" '^agent$' "4: stop skipped the agent step (ended on $(json_get "$OUT" 'j["method"]'))"
diag "4: stop ended on $(json_get "$OUT" 'j["method"]') after $(json_get "$OUT" 'j["ms"]') ms (stop_timeout: 10)"
run hutch list -a
like "$OUT" '^ac +stopped' "4: list -a: ac is stopped"

done_testing
