#!/usr/bin/env bash
# hutch events: lifecycle events of both backends as they happen. The qemu backend's monitor writes
# them to the VM's events.jsonl, followed with inotify (VMs created after `events` started too);
# libvirt VMs come from libvirt's own lifecycle events (virConnectDomainEventRegisterAny), with
# agent-ready from the start that heard HELLO. Stops by hutch, by the guest, by `virsh destroy`,
# and QEMU killed with SIGKILL; a libvirt connection lost while a domain stops (missed, not lost).
# once
# timeout: 900
. "$(dirname "$0")/lib.sh"
exec </dev/null

URI=qemu:///session
Q=evq$$
L=evl$$
# has_event FILE VM EVENT [REASON]: FILE holds that event (JSON lines)
has_event()
{
	python3 - "$@" <<'PY'
import json, sys
f, vm, ev = sys.argv[1:4]
reason = sys.argv[4] if len(sys.argv) > 4 else None
for line in open(f):
    try:
        j = json.loads(line)
    except ValueError:
        sys.exit(2)  # a broken line is a failure, not "not yet"
    if j.get("vm") == vm and j.get("event") == ev and (reason is None or j.get("reason") == reason):
        sys.exit(0)
sys.exit(1)
PY
}
count_events()
{
	python3 -c 'import json,sys; print(sum(1 for l in open(sys.argv[1]) if json.loads(l).get("vm")==sys.argv[2] and json.loads(l).get("event")==sys.argv[3]))' "$@"
}

mkdir -p "$HUTCH_HOME/data/vms"
"$HUTCH" events --json >"$T/all.json" 2>"$T/all.err" &
EVALL=$!
"$HUTCH" events "$Q" >"$T/q.txt" 2>"$T/q.err" &
EVQ=$!
trap 'kill $EVALL $EVQ 2>/dev/null' EXIT

# ---- qemu backend: a VM created after `events` started ----
run hutch create "$Q" --template micro
is "$RC" 0 "create a micro VM on the qemu backend"
run hutch start "$Q" --timeout 300
is "$RC" 0 "start it"
ok "events: started (qemu)" wait_until 30 has_event "$T/all.json" "$Q" started
ok "events: agent-ready (qemu)" wait_until 30 has_event "$T/all.json" "$Q" agent-ready
run hutch stop "$Q"
is "$RC" 0 "stop it"
ok "events: stopped, reason requested" wait_until 30 has_event "$T/all.json" "$Q" stopped requested

run hutch start "$Q" --timeout 300
qpid=$(pgrep -P "$(monitor_pid "$Q")" -f qemu-system | head -1)
ok "QEMU of the qemu backend found" test -n "$qpid"
kill -9 "$qpid"
ok "QEMU killed with SIGKILL: events says crashed, qemu-killed" \
	wait_until 60 has_event "$T/all.json" "$Q" crashed qemu-killed
like "$(grep "\"$Q\"" "$T/all.json" | grep crashed)" "killed by signal 9" "... with the signal in the detail"

# the guest powers itself off
run hutch start "$Q" --timeout 300
run hutch exec "$Q" -- poweroff -f
wait_until 60 sh -c "! '$HUTCH' list | grep -q '^$Q '"
ok "the guest powering off: stopped, reason poweroff" wait_until 30 has_event "$T/all.json" "$Q" stopped poweroff

# text form, filtered to one VM
like "$(cat "$T/q.txt")" "^[0-9-]+T[0-9:]+Z $Q qemu started" "text: one line per event, time vm backend event"
like "$(cat "$T/q.txt")" "$Q qemu stopped requested: requested by the CLI" "text: the reason and why"
is "$(grep -vc " $Q " "$T/q.txt")" 0 "events NAME shows only that VM"
is "$(count_events "$T/all.json" "$Q" started)" 3 "three starts, three started events (none lost, none doubled)"

# ---- libvirt backend ----
if ! command -v virsh >/dev/null; then
	fail "libvirt is installed (virsh)" "install libvirt-clients libvirt-daemon-driver-qemu (scripts/deps.sh)"
	done_testing
fi
vsh() { timeout 60 virsh -q -c "$URI" "$@"; }
run hutch create "$L" --template micro --backend libvirt
is "$RC" 0 "create a micro VM on the libvirt backend (events subscribes to its URI)"
sleep 1 # let the follower subscribe; libvirt does not replay what happened before
run hutch start "$L" --timeout 300
is "$RC" 0 "start it"
ok "events: started (libvirt, from libvirt's lifecycle event)" \
	wait_until 30 has_event "$T/all.json" "$L" started booted
ok "events: agent-ready (libvirt)" wait_until 30 has_event "$T/all.json" "$L" agent-ready
run hutch stop "$L"
is "$RC" 0 "stop it"
ok "events: stopped, reason requested (libvirt)" wait_until 30 has_event "$T/all.json" "$L" stopped requested
like "$(grep "\"$L\"" "$T/all.json" | grep stopped)" "hutch stop; the guest powered off" "... and how it ended"

run hutch start "$L" --timeout 300
vsh destroy "hutch-$L" >/dev/null
ok "virsh destroy behind hutch's back: stopped, reason destroyed" \
	wait_until 30 has_event "$T/all.json" "$L" stopped destroyed

# the connection drops (the session daemon is killed) and the domain dies while nobody listens:
# events says the connection was lost, and once it is back, what changed meanwhile (reason missed)
run hutch start "$L" --timeout 300
is "$RC" 0 "start it again"
lpid=$(pgrep -u "$(id -u)" -f "guest=hutch-$L," | head -1)
dpid=$(cat "$HOME/.cache/libvirt/libvirtd.pid" 2>/dev/null)
ok "the domain's QEMU and the session daemon found" test -n "$lpid" -a -n "$dpid"
kill -9 "$dpid" "$lpid"
ok "the daemon killed: events says the connection was lost" \
	wait_until 60 has_event "$T/all.json" "$L" connection-lost
# The new daemon reconnects to its domains' QEMUs in the background: listed at once, the domain is
# gone already, or still listed as running, and then stopped with no event of libvirt's (its
# reconnect to a dead QEMU sends none), which hutch reads again for a while. Either way: missed.
ok "... and once it is back, that the VM stopped meanwhile (reason missed)" \
	wait_until 90 has_event "$T/all.json" "$L" stopped missed
diag "$L after the loss: $(grep "\"$L\"" "$T/all.json" | python3 -c 'import json,sys; print(" ".join(json.loads(l)["event"]+"/"+str(json.loads(l).get("reason")) for l in sys.stdin))')"
like "$(grep "\"$L\"" "$T/all.json" | grep '"stopped"' | grep missed)" \
	"while the connection to qemu:.*session was down|back on qemu:.*session, reconnected to it" "... saying when"

is "$(grep -c "\"$L\"" "$T/q.txt")" 0 "the filtered follower saw none of the other VM"
ok "the followers are still running" kill -0 "$EVALL" "$EVQ"
is "$(cat "$T/all.err" "$T/q.err")" "" "... and printed no errors"

# its supervisor finds the domain gone once libvirt is back, and lets go of the run lock
l_stopped() { hutch list -a | grep -Eq "^$L +stopped "; }
ok "... and list shows it stopped (its supervisor let go)" wait_until 60 l_stopped
run hutch destroy "$L"
is "$RC" 0 "destroy it"
run hutch destroy "$Q"
done_testing
