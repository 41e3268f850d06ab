#!/usr/bin/env bash
# The auto_shutdown policies on the libvirt backend (qemu:///session), applied by the supervisor
# that start spawns beside the domain: idle (a session longer than idle keeps the VM up, then it
# stops by itself), on_app_exit (run starts the VM, the app exits, the VM stops), list's ACCEL and
# AGENT columns from that supervisor, and a domain started outside hutch (virsh): start says
# "already running" and hutch applies the policies from then on.
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
run hutch exec "$I" -- sleep 25
is "$RC" 0 "idle: a session longer than idle is not cut off"
ok "idle: $I stops by itself with no sessions" wait_until 300 stopped "$I"
like "$(cat "$HUTCH_HOME/data/vms/$I/libvirt-watch.log" 2>/dev/null)" "stopping: idle" "... for being idle"
run hutch start "$I" --timeout 600
is "$RC" 0 "start $I again after its idle stop"
run hutch stop "$I"
is "$RC" 0 "... and stop"

# ---- on_app_exit ----
run hutch run "$A" -- true
is "$RC" 0 "run $A -- true starts it on demand and exits 0"
ok "on_app_exit: $A stops by itself after its app exits" wait_until 300 stopped "$A"

# ---- a domain started outside hutch ----
vsh start "hutch-$A" >/dev/null
run hutch start "$A"
is "$RC" 1 "start of a domain virsh started fails"
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

for v in "$I" "$A"; do
	run hutch destroy "$v"
	is "$RC" 0 "destroy $v"
done
done_testing
