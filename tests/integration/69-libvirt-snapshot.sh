#!/usr/bin/env bash
# hutch snapshot save|restore|ls|rm on libvirt VMs (qemu:///session), through libvirt's own snapshot
# API: a micro VM (RAM and devices in the snapshot disk its domain carries) whose file written after
# the snapshot is gone after restore and whose process started before it runs again, running or
# stopped; an image VM with no OS (never booted: the BIOS spins) for disk-only snapshots of a stopped
# VM beside its read-only seed, and the refusal to restore one into a running VM; destroy with
# snapshots undefines the domain and removes their data.
# once
# timeout: 900
. "$(dirname "$0")/lib.sh"
exec </dev/null

if ! command -v virsh >/dev/null; then
	fail "libvirt is installed (virsh)" "install libvirt-clients libvirt-daemon-driver-qemu (scripts/deps.sh)"
	done_testing
fi
URI=qemu:///session
vsh() { timeout 60 virsh -q -c "$URI" "$@"; }
# one name per run: the session daemon is the user's, shared with other tests' homes
N=lsn$$
D=hutch-$N

run hutch create "$N" --template micro --backend libvirt
is "$RC" 0 "create a micro VM on libvirt"
run hutch snapshot save "$N" t1
is "$RC" 1 "snapshot save of a stopped micro VM fails"
like "$ERR" "snapshot save '$N' 't1': '$N' is stopped, and a micro VM has no disk" "... naming the VM and why"
run hutch start "$N" --timeout 600
is "$RC" 0 "start"
like "$(vsh domblklist "$D")" "vda +.*/vms/$N/snapshots.qcow2" "the domain carries the micro VM's snapshot disk"

# A process in a session of its own, so exec returns while it runs on.
run hutch exec "$N" -- sh -c 'setsid sleep 100000 </dev/null >/dev/null 2>&1 & echo $! >/sleeper.pid; cat /sleeper.pid'
is "$RC" 0 "a sleeper starts"
pid=$OUT
like "$pid" '^[0-9]+$' "its pid is known"

run hutch snapshot save "$N" 'bad tag'
is "$RC" 1 "an invalid tag is refused"
like "$ERR" "invalid snapshot tag" "... and named"
run hutch snapshot save "$N" t1
is "$RC" 0 "snapshot save (running: disk and RAM)"
like "$OUT" "saved snapshot t1 of $N \(disk and RAM\)" "save says what it kept"
is "$(vsh snapshot-list "$D" --name | xargs)" "t1" "libvirt holds the snapshot (virsh snapshot-list)"
run hutch snapshot ls "$N" --json
is "$(json_get "$OUT" '[(t["tag"], t["ram"], t["state"]) for t in j]')" "[('t1', True, 'running')]" "ls --json lists t1 with RAM"
is "$(json_get "$OUT" 'j[0]["vm_state_bytes"] > 0 and j[0]["date"] > 0')" True "ls --json gives its size and time"
run hutch snapshot ls "$N"
like "$OUT" '^t1 +disk\+ram +[0-9.]+ [KMG]iB 20[0-9-]+ ' "plain ls has a row with size and time"

run hutch exec "$N" -- sh -c "echo after > /after; kill $pid; sleep 1; kill -0 $pid 2>/dev/null && echo alive || echo dead"
is "$OUT" dead "after the snapshot: a file is written and the sleeper is killed"
run hutch snapshot restore "$N" t1
is "$RC" 0 "snapshot restore of the running VM"
like "$OUT" "restored $N to snapshot t1" "... says so"
run hutch exec "$N" -- sh -c "test -e /after && echo present || echo absent"
is "$OUT" absent "the file written after the snapshot is gone"
run hutch exec "$N" -- sh -c "kill -0 $pid && echo alive"
is "$OUT" alive "the process started before the snapshot runs again"
run hutch list
like "$OUT" "^$N +running +libvirt" "list: running"

run hutch stop "$N"
is "$RC" 0 "stop"
run hutch snapshot ls "$N" --json
is "$(json_get "$OUT" '[t["tag"] for t in j]')" "['t1']" "a stopped VM's snapshots are listed"
run hutch snapshot restore "$N" t1 --json
is "$RC" 0 "restore of a stopped VM starts it and restores"
is "$(json_get "$OUT" 'j["restored"]')" t1 "... --json names the snapshot"
like "$(vsh domstate "$D")" running "... and libvirt runs the domain"
run hutch exec "$N" -- sh -c "kill -0 $pid && cat /sleeper.pid"
is "$OUT" "$pid" "the sleeper of the snapshot runs in the restored VM"
run hutch snapshot restore "$N" nope
is "$RC" 1 "restoring a missing tag fails"
like "$ERR" "snapshot restore '$N' 'nope': '$N' has no snapshot 'nope'" "... naming the VM and the step"

run hutch snapshot rm "$N" t1 --json
is "$RC" 0 "snapshot rm"
is "$(json_get "$OUT" 'j["removed"]')" t1 "... --json names it"
run hutch snapshot ls "$N" --json
is "$(json_get "$OUT" 'len(j)')" 0 "no snapshots left"
is "$(vsh snapshot-list "$D" --name | xargs)" "" "... in libvirt either"
run hutch snapshot rm "$N" t1
is "$RC" 1 "removing it again fails"
like "$ERR" "has no snapshot 't1'" "... saying so"

run hutch snapshot save "$N" keep
is "$RC" 0 "a snapshot to destroy with"
dir=$HUTCH_HOME/data/vms/$N
run hutch destroy --force "$N"
is "$RC" 0 "destroy --force of a running VM with a snapshot"
unlike "$(vsh list --all --name)" "^$D\$" "... undefines the domain with its snapshot metadata"
[ ! -e "$dir" ] && pass "... and removes the snapshots' data with the VM" || fail "... and removes the snapshots' data" "$(ls -la "$dir")"

# ---- an image VM: disk-only snapshots while stopped (the read-only seed is left out) ----
mkdir -p "$T/img"
qemu-img create -q -f qcow2 "$T/img/blank.qcow2" 64M
sum=$(sha256sum <"$T/img/blank.qcow2" | cut -d' ' -f1)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 "$port" --directory "$T/img" >/dev/null 2>&1 &
http=$!
wait_until 30 sh -c "python3 -c \"import socket; socket.create_connection(('127.0.0.1',$port),timeout=1)\" 2>/dev/null"
I=lsi$$
cat >"$T/img.yml" <<EOF
$I:
  source: {image: "http://127.0.0.1:$port/blank.qcow2", checksum: "sha256:$sum"}
  network: {mode: none}
  memory: 256M
  backend: libvirt
EOF
run hutch create "$I" -f "$T/img.yml"
kill "$http" 2>/dev/null
is "$RC" 0 "create an image VM on libvirt"
run hutch snapshot save "$I" d1
is "$RC" 0 "snapshot save of a stopped image VM"
like "$OUT" "saved snapshot d1 of $I \(disk only\)" "... keeps its disk only"
run hutch snapshot ls "$I" --json
is "$(json_get "$OUT" '[(t["tag"], t["ram"], t["state"]) for t in j]')" "[('d1', False, 'shutoff')]" "ls --json: disk-only"
run hutch snapshot ls "$I"
like "$OUT" '^d1 +disk +- 20[0-9-]+ ' "plain ls: kind disk, no RAM"
ok "the snapshot is in the VM's disk" sh -c "qemu-img snapshot -l '$HUTCH_HOME/data/vms/$I/disk.qcow2' | grep -qw d1"
run hutch snapshot save "$I" d1
is "$RC" 0 "saving a tag again replaces it"
is "$(vsh snapshot-list "hutch-$I" --name | xargs)" "d1" "... leaving one"
run hutch snapshot restore "$I" d1
is "$RC" 0 "a disk-only restore of a stopped VM"
like "$(vsh domstate "hutch-$I")" "shut off" "... leaves it stopped"
run hutch start "$I" --wait none
is "$RC" 0 "start (no OS: the BIOS spins)"
run hutch snapshot restore "$I" d1
is "$RC" 1 "a disk-only snapshot is not restored into a running VM"
like "$ERR" "snapshot 'd1' of '$I' is disk-only: stop the VM" "... saying why"
run hutch snapshot save "$I" r1
is "$RC" 0 "snapshot save of the running image VM"
like "$OUT" "\(disk and RAM\)" "... with its RAM"
run hutch snapshot restore "$I" r1
is "$RC" 0 "restore it (no agent to wait for)"
run hutch destroy --force --disk "$I"
is "$RC" 0 "destroy --disk with snapshots"
unlike "$(vsh list --all --name)" "^hutch-$I\$" "... undefines the domain"
ok "... and removes the disk that held them" test ! -e "$HUTCH_HOME/data/vms/$I"
done_testing
