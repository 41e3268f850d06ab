#!/usr/bin/env bash
# The auto_shutdown policies on the libvirt backend (qemu:///session), applied by the supervisor
# that start spawns beside the domain: idle (a session longer than idle keeps the VM up, then it
# stops by itself), on_app_exit (run starts the VM, the app exits, the VM stops), list's ACCEL and
# AGENT columns from that supervisor, a domain started outside hutch (virsh): start says "already
# running" and hutch applies the policies from then on, and run --rm killed mid-run leaves nothing.
# once
# timeout: 1200
. "$(dirname "$0")/lib.sh"
exec </dev/null

if ! command -v virsh >/dev/null; then
	fail "libvirt is installed (virsh)" "install libvirt-clients libvirt-daemon-driver-qemu (scripts/deps.sh)"
	done_testing
fi
URI=qemu:///session
vsh() { timeout 60 virsh -q -c "$URI" "$@"; }
# one name per run: the session daemon is the user's, shared with other tests' homes
I=li$$
A=la$$
cat >"$T/vms.yml" <<EOF
$I:
  source: {template: micro}
  backend: libvirt
  auto_shutdown: {idle: 10}
$A:
  source: {template: micro}
  backend: libvirt
  auto_shutdown: {on_app_exit: true}
EOF
for v in "$I" "$A"; do
	run hutch create "$v" --from "$T/vms.yml"
	is "$RC" 0 "create $v (libvirt, auto_shutdown)"
done
# stopped NAME: libvirt says the domain is off and list -a says stopped (the supervisor let go)
stopped()
{
	vsh domstate "hutch-$1" 2>/dev/null | grep -q "shut off" && hutch list -a 2>/dev/null | grep -Eq "^$1 +stopped"
}

# events says why each stopped: reason idle and app-exit, as on the qemu backend
"$HUTCH" events --json >"$T/ev.json" 2>"$T/ev.err" &
EV=$!
trap 'kill $EV 2>/dev/null; _cleanup' EXIT
# has_event VM EVENT REASON: events printed it
has_event()
{
	python3 - "$T/ev.json" "$@" <<'PY'
import json, sys
f, vm, ev, reason = sys.argv[1:5]
sys.exit(0 if any(j.get("vm") == vm and j.get("event") == ev and j.get("reason") == reason
                  for j in map(json.loads, open(f))) else 1)
PY
}
sleep 1 # let the follower subscribe; libvirt does not replay what happened before

# ---- idle ----
run hutch start "$I" --timeout 600
is "$RC" 0 "start $I (auto_shutdown.idle: 10)"
run hutch exec "$I" -- true
is "$RC" 0 "idle: usable right after start (boot time is not idle time)"
run hutch list
like "$OUT" "^$I +running +libvirt +tcg .* ready " "list: ACCEL and AGENT of a running libvirt VM"
run hutch list --json
is "$(json_get "$OUT" "[v['agent'] for v in j if v['name']=='$I'][0]")" "ready" "list --json: the agent is ready"
# a session longer than idle: the VM stays up for it
run hutch exec "$I" -- sleep 15
is "$RC" 0 "idle: a session longer than idle is not cut off"
ok "idle: $I stops by itself with no sessions" wait_until 300 stopped "$I"
ok "... and events says why: stopped, reason idle" wait_until 30 has_event "$I" stopped idle
run hutch start "$I" --timeout 600
is "$RC" 0 "start $I again after its idle stop"
run hutch stop "$I"
is "$RC" 0 "... and stop"

# ---- on_app_exit ----
run hutch run "$A" -- true
is "$RC" 0 "run $A -- true starts it on demand and exits 0"
ok "on_app_exit: $A stops by itself after its app exits" wait_until 300 stopped "$A"
ok "... and events says why: stopped, reason app-exit" wait_until 30 has_event "$A" stopped app-exit

# ---- a domain started outside hutch ----
vsh start "hutch-$A" >/dev/null
run hutch start "$A"
is "$RC" 3 "start of a domain virsh started exits 3 (already running)"
like "$ERR" "already running: libvirt runs the domain 'hutch-$A', started outside hutch" "... saying already running, and by whom"
run hutch list
like "$OUT" "^$A +running +libvirt +tcg" "list shows it running, with its ACCEL"
# hutch watches it from now on: the app's policy applies once the agent is up
agent_up() { hutch exec "$A" -- true >/dev/null 2>&1; }
ok "its agent comes up" wait_until 300 agent_up
run hutch list
like "$OUT" "^$A +running +libvirt +tcg .* ready " "... and AGENT ready once a session went through"
run hutch run "$A" -- true
is "$RC" 0 "run $A -- true in the adopted domain"
ok "on_app_exit applies to it too: $A stops by itself" wait_until 300 stopped "$A"

# ---- run --rm whose CLI is killed: the transient domain and the instance go all the same ----
"$HUTCH" run --rm --backend libvirt micro -- sh -c 'echo up; sleep 600' >"$T/rm.out" 2>"$T/rm.err" &
rm_pid=$!
ok "run --rm on libvirt runs its program" wait_until 300 grep -q up "$T/rm.out"
inst=$(vm_names | grep '^micro-' | head -1)
ok "... in a disposable instance" test -n "$inst"
kill -9 "$rm_pid"
wait "$rm_pid" 2>/dev/null
rm_gone()
{
	! vsh list --all --name 2>/dev/null | grep -q "^hutch-$inst\$" && [ -z "$(vm_names | grep "^$inst\$")" ]
}
ok "run --rm killed with SIGKILL: its domain and instance are removed all the same" wait_until 120 rm_gone

for v in "$I" "$A"; do
	run hutch destroy "$v"
	is "$RC" 0 "destroy $v"
done
done_testing
