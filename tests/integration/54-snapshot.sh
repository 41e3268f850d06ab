#!/usr/bin/env bash
# hutch snapshot save|restore|ls|rm on a persistent micro VM: RAM and device state in the VM's
# snapshots.qcow2 (savevm/loadvm). A file written after the snapshot is gone after restore, and a
# process started before it runs again; a stopped VM is started to restore; destroy removes it all.
# once
# timeout: 900
. "$(dirname "$0")/lib.sh"
exec </dev/null

run hutch create s --template micro
is "$RC" 0 "create s"
run hutch snapshot save s t1
is "$RC" 1 "snapshot save of a stopped micro VM fails"
like "$ERR" "micro VM has no disk" "and says why"
run hutch start s
is "$RC" 0 "start s"

# A process in a session of its own, so exec returns while it runs on.
run hutch exec s -- sh -c 'setsid sleep 100000 </dev/null >/dev/null 2>&1 & echo $! >/sleeper.pid; cat /sleeper.pid'
is "$RC" 0 "a sleeper starts in s"
pid=$OUT
like "$pid" '^[0-9]+$' "its pid is known"

run hutch snapshot save s 'bad tag'
is "$RC" 1 "an invalid tag is refused"
like "$ERR" "invalid snapshot tag" "and named"
run hutch snapshot save s t1
is "$RC" 0 "snapshot save s t1 (running: disk and RAM)"
like "$OUT" 'saved snapshot t1 of s \(disk and RAM\)' "save says what it kept"
run hutch snapshot ls s --json
is "$(json_get "$OUT" '[(t["tag"], t["ram"]) for t in j]')" "[('t1', True)]" "ls --json lists t1 with RAM"
is "$(json_get "$OUT" 'j[0]["vm_state_bytes"] > 0 and j[0]["date"] > 0')" True "ls --json gives its size and time"
run hutch snapshot ls s
like "$OUT" '^t1 +disk\+ram +[0-9.]+ [KMG]iB 20[0-9-]+ ' "plain ls has a row with size and time"

run hutch exec s -- sh -c "echo after > /after; kill $pid; sleep 1; kill -0 $pid 2>/dev/null && echo alive || echo dead"
is "$OUT" dead "after the snapshot: a file is written and the sleeper is killed"

run hutch snapshot restore s t1
is "$RC" 0 "snapshot restore s t1"
run hutch exec s -- sh -c "test -e /after && echo present || echo absent"
is "$OUT" absent "the file written after the snapshot is gone"
run hutch exec s -- sh -c "kill -0 $pid && echo alive"
is "$OUT" alive "the process started before the snapshot runs again"

run hutch stop s
is "$RC" 0 "stop s"
run hutch snapshot ls s --json
is "$(json_get "$OUT" '[t["tag"] for t in j]')" "['t1']" "a stopped VM's snapshots are listed"
run hutch snapshot restore s t1
is "$RC" 0 "restore of a stopped VM starts it and restores"
run hutch exec s -- sh -c "kill -0 $pid && cat /sleeper.pid"
is "$OUT" "$pid" "the sleeper of the snapshot runs in the restored VM"
run hutch snapshot restore s nope
is "$RC" 1 "restoring a missing tag fails"
like "$ERR" "has no snapshot 'nope'" "and says so"

run hutch snapshot rm s t1
is "$RC" 0 "snapshot rm s t1"
run hutch snapshot ls s --json
is "$(json_get "$OUT" 'len(j)')" 0 "no snapshots left"

dir=$HUTCH_HOME/data/vms/s
[ -e "$dir/snapshots.qcow2" ] && pass "a micro VM keeps its snapshots in snapshots.qcow2" ||
	fail "a micro VM keeps its snapshots in snapshots.qcow2"
run hutch destroy --force s
is "$RC" 0 "destroy s"
[ ! -e "$dir" ] && pass "destroy deletes the VM's snapshots" || fail "destroy deletes the VM's snapshots" "$(ls -la "$dir")"
ok "no QEMU left" wait_until 30 no_qemu
done_testing
