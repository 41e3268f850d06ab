#!/usr/bin/env bash
# The fault-injection suite (issue 5): each case breaks something on purpose and asserts the error
# message and that nothing was lost. Numbers follow the issue; 5 (disk held by another QEMU) and 10
# (hostile agent) live elsewhere.
#
#   1  SIGKILL of the monitor, stale runtime dir, stale pids naming an unrelated process
#   2  50 concurrent `hutch start` on one VM
#   3  SIGKILL at each step of a state write (killshim: seccomp user notification, no test hook),
#      plus a loop of create/destroy killed at random moments
#   4  a garbage spec: that VM is "broken", the rest are listed
#   6  ENOSPC on a tiny tmpfs HUTCH_HOME (user + mount namespace)
#   7  QMP faults from fake-qemu under a real monitor
#   8  bad names, and socket paths that overflow sun_path
#   9  YAML alias bomb, 10 MiB spec, non-UTF-8 bytes, deep nesting
#   11 SIGTERM / SIGINT / SIGPIPE to the CLI mid-operation
#
# Helpers (tests/helpers): fake-qemu, killshim.
. "$(dirname "$0")/lib.sh"

helpers=${HUTCH_HELPERS:-$(dirname "$HUTCH")}
FAKE_QEMU=$helpers/fake-qemu
KILLSHIM=$helpers/killshim
V=$HUTCH_HOME/data/vms
R=$HUTCH_HOME/run

section()
{
	diag "---- $* ---- (${SECONDS}s)"
}

gone()
{
	[ ! -e "/proc/$1" ] || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]
}
alive()
{
	kill -0 "$1" 2>/dev/null && ! gone "$1"
}
ppid_of()
{
	awk '{print $4}' "/proc/$1/stat" 2>/dev/null
}
have_qemu()
{
	[ -n "$(qemu_pids)" ]
}
no_monitor()
{
	[ -z "$(monitor_pid "$1")" ]
}
# no_orphan_qemu NAME: every QEMU of this HUTCH_HOME is the child of NAME's live monitor.
no_orphan_qemu()
{
	local q mons
	mons=" $(monitor_pid "$1" | tr '\n' ' ') "
	for q in $(qemu_pids); do
		case "$mons" in *" $(ppid_of "$q") "*) ;; *) return 1 ;; esac
	done
	return 0
}
# settled NAME: running with exactly one QEMU under its monitor, or fully stopped.
settled()
{
	local m q
	m=$(monitor_pid "$1")
	q=$(qemu_pids)
	if [ -z "$m" ] && [ -z "$q" ] && ! store_locked "$1"; then
		return 0
	fi
	[ -n "$m" ] && [ "$(echo "$q" | grep -c .)" -eq 1 ] && no_orphan_qemu "$1" &&
		"$HUTCH" list 2>/dev/null | grep -Eq "^$1 +running"
}
# store_locked NAME: hutch reports NAME running (the run lock is held).
store_locked()
{
	"$HUTCH" list 2>/dev/null | grep -Eq "^$1 +running"
}
# state_of NAME: running|stopped|broken|absent, from list -a.
state_of()
{
	local s
	s=$("$HUTCH" list -a 2>/dev/null | awk -v n="$1" '$1 == n {print $2}')
	echo "${s:-absent}"
}
valid_json_file()
{
	python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$1" 2>/dev/null
}

for h in "$FAKE_QEMU" "$KILLSHIM"; do
	ok "helper $(basename "$h") is built" test -x "$h"
done

# ------------------------------------------------------------------------------------------------
section "1: SIGKILL of the monitor, stale runtime dir, a stale pid naming an unrelated process"
run hutch create c1 --template micro
is "$RC" 0 "1: create c1"
run hutch start c1
is "$RC" 0 "1: start c1"
mon=$(monitor_pid c1)
qemu=$(qemu_pids)
kill -9 "$mon"
ok "1: the monitor is gone after kill -9" wait_until 30 gone "$mon"
ok "1: its QEMU died with it" wait_until 30 gone "$qemu"
ok "1: precondition: the dead monitor left its runtime dir and lock file behind" \
	test -e "$R/c1/lock" -a -S "$R/c1/monitor.sock"

# An unrelated long-lived process now owns the pid a naive tool would read from a pidfile.
sleep 300 &
bystander=$!
for f in "$R/c1/pid" "$R/c1/monitor.pid" "$R/c1/qemu.pid" "$V/c1/monitor.pid" "$V/c1/qemu.pid" "$V/c1/pid"; do
	echo "$bystander" >"$f"
done
run hutch list -a
like "$OUT" '^c1 +stopped' "1: list -a reports c1 stopped despite the stale runtime dir and pidfiles"
run hutch inspect c1 --json
is "$(json_get "$OUT" 'j["state"]' 2>/dev/null)" stopped "1: inspect reports c1 stopped"
run hutch stop c1
is "$RC" 0 "1: stop on the dead VM exits 0"
like "$OUT$ERR" 'not running' "1: stop says not running"
ok "1: stop left the unrelated process alone" alive "$bystander"
run hutch start c1
is "$RC" 0 "1: start works again over the stale runtime dir"
like "$OUT" '^started c1' "1: it prints started"
is "$(qemu_count)" 1 "1: exactly one QEMU"
run hutch stop c1
is "$RC" 0 "1: stop exits 0"
like "$OUT" '^stopped c1' "1: stop prints stopped"
ok "1: no QEMU after stop" wait_until 30 no_qemu
run hutch stop --force c1
like "$OUT$ERR" 'not running' "1: stop --force on the stopped VM says not running"
run hutch destroy c1
is "$RC" 0 "1: destroy c1"
ok "1: the unrelated process was never signalled" alive "$bystander"
kill "$bystander" 2>/dev/null
wait "$bystander" 2>/dev/null

# ------------------------------------------------------------------------------------------------
section "2: 50 concurrent starts on one VM"
N=50
run hutch create race --template micro
is "$RC" 0 "2: create race"
mkdir -p "$T/c2"
for i in $(seq $N); do
	(
		timeout -k 5 150 "$HUTCH" start race >"$T/c2/$i.out" 2>"$T/c2/$i.err"
		echo $? >"$T/c2/$i.rc"
	) &
done
wait
won=0 lost=0 other=0 badrc=0
for i in $(seq $N); do
	rc=$(cat "$T/c2/$i.rc")
	case "$rc" in 0 | 1 | 3) ;; *) badrc=$((badrc + 1)) ;; esac
	if [ "$rc" = 0 ] && grep -q '^started race' "$T/c2/$i.out"; then
		won=$((won + 1))
	elif { [ "$rc" = 3 ] && grep -q 'already running' "$T/c2/$i.err"; } ||
		{ [ "$rc" = 1 ] && grep -q 'busy' "$T/c2/$i.err"; }; then
		lost=$((lost + 1))
	else
		other=$((other + 1))
		[ "$other" -gt 3 ] || diag "start #$i: exit $rc" "$(cat "$T/c2/$i.out" "$T/c2/$i.err")"
	fi
done
diag "2: won $won, already running/busy $lost, other $other; busy: $(cat "$T"/c2/*.err | grep -c busy)"
is "$badrc" 0 "2: every start exited 0, 1 or 3 (none hung or crashed)"
is "$won" 1 "2: exactly one of $N starts succeeds"
is "$lost" $((N - 1)) "2: the other $((N - 1)) fail with 'already running' or 'busy'"
is "$(qemu_count)" 1 "2: exactly one QEMU"
is "$(monitor_pid race | grep -c .)" 1 "2: exactly one monitor"
ok "2: the QEMU is the monitor's child" no_orphan_qemu race
# race stays up for case 4 (a running VM whose spec turns to garbage).

# ------------------------------------------------------------------------------------------------
section "4: one VM's spec is garbage"
for n in a4 b4 c4; do
	run hutch create $n --template micro
done
cp "$V/b4/spec.yml" "$T/b4.spec"
i=0
for variant in binary empty other-vm yaml-error; do
	i=$((i + 1))
	case $variant in
	binary) printf '\x00\xff\xfe garbage \x01\n\xc3' >"$V/b4/spec.yml" ;;
	empty) : >"$V/b4/spec.yml" ;;
	other-vm) printf 'someone-else:\n  source: {template: micro}\n' >"$V/b4/spec.yml" ;;
	yaml-error) printf 'b4:\n  memory: [512M\n  cpus: }\n' >"$V/b4/spec.yml" ;;
	esac
	run hutch list -a
	is "$RC" 0 "4/$variant: list -a exits 0"
	like "$OUT" '^b4 +broken' "4/$variant: b4 is broken"
	like "$OUT" '^a4 +stopped' "4/$variant: a4 is still listed"
	like "$OUT" '^c4 +stopped' "4/$variant: c4 is still listed"
	like "$OUT" '^race +running' "4/$variant: the running VM is still listed"
	run hutch list --json
	is "$RC" 0 "4/$variant: list --json exits 0"
	is "$(json_get "$OUT" '[v["state"] for v in j if v["name"]=="b4"][0]')" broken "4/$variant: list --json: b4 broken"
	like "$(json_get "$OUT" '[v.get("error","") for v in j if v["name"]=="b4"][0]')" 'spec\.yml|b4' \
		"4/$variant: list --json: b4 has an error field naming the spec or VM"
	is "$(json_get "$OUT" 'sum(1 for v in j if v["name"]!="b4" and "error" in v)')" 0 \
		"4/$variant: list --json: no error field on the healthy VMs"
	if [ $i -eq 1 ]; then
		run hutch inspect b4
		is "$RC" 1 "4: inspect of the broken VM exits 1"
		contains "$ERR" "$V/b4/spec.yml" "4: inspect names the broken spec file"
		run hutch start b4
		is "$RC" 1 "4: start of the broken VM exits 1"
		contains "$ERR" "$V/b4/spec.yml" "4: start names the broken spec file"
		is "$(qemu_count)" 1 "4: the refused start spawned no QEMU"
	fi
done
# A running VM whose spec breaks must still be listed as running and be stoppable.
cp "$V/race/spec.yml" "$T/race.spec"
printf 'race: [\x00\n' >"$V/race/spec.yml"
run hutch list
like "$OUT" '^race +running' "4: a running VM with a garbage spec is listed running"
run hutch stop race
is "$RC" 0 "4: a running VM with a garbage spec can be stopped"
ok "4: its QEMU is gone" wait_until 30 no_qemu
cp "$T/race.spec" "$V/race/spec.yml"
run hutch destroy b4
is "$RC" 0 "4: the broken VM can be destroyed"
run hutch list -a
like "$OUT" '^a4 +stopped' "4: a4 survived"
like "$OUT" '^race +stopped' "4: race is back to stopped with its spec restored"
ok "4: nothing rewrote the other specs" test -s "$V/a4/spec.yml" -a -s "$V/c4/spec.yml"
for n in a4 c4; do
	hutch destroy $n >/dev/null 2>&1
done

# ------------------------------------------------------------------------------------------------
section "3b: SIGKILL at each step of the monitor's state.json write (old or new survives)"
# race was started and stopped in cases 2 and 4: its state.json is the old file.
state=$V/race/state.json
ok "3b: race has a state.json from its last stop" test -s "$state"
for step in partial rename dirsync; do
	cp "$state" "$T/state.old"
	timeout -k 5 200 "$KILLSHIM" "$step" /state.json -- "$HUTCH" start race >"$T/ks.out" 2>"$T/ks.err" &
	ks=$!
	if ! wait_until 150 grep -q '^started race' "$T/ks.out"; then
		fail "3b/$step: start race under killshim" "$(cat "$T/ks.out" "$T/ks.err")"
		kill "$ks" 2>/dev/null
		continue
	fi
	run hutch stop race
	is "$RC" 0 "3b/$step: stop exits 0 even though the monitor died writing state.json"
	ok "3b/$step: no QEMU, no monitor" wait_until 30 eval 'no_qemu && no_monitor race'
	wait "$ks"
	like "$(cat "$T/ks.err")" "^killshim: killed [0-9]+ at $step: " "3b/$step: the monitor was killed at the $step step"
	ok "3b/$step: state.json is not empty" test -s "$state"
	ok "3b/$step: state.json is complete JSON" valid_json_file "$state"
	if [ $step = dirsync ]; then
		ok "3b/$step: state.json is the new one" eval '! cmp -s "$state" "$T/state.old"'
	else
		ok "3b/$step: state.json is the old one" cmp -s "$state" "$T/state.old"
	fi
	is "$(state_of race)" stopped "3b/$step: list -a says stopped"
done
ok "3b: state.json is complete JSON at the end" valid_json_file "$state"
diag "3b: stray state.json.tmp.* files: $(find "$V/race" -name 'state.json.tmp.*' | wc -l)"

hutch destroy race >/dev/null 2>&1

# ------------------------------------------------------------------------------------------------
section "3a: SIGKILL at each step of create's spec.yml write"
spec=$V/k3/spec.yml
half_created=0
for step in open write partial fsync rename dirsync; do
	run timeout -k 5 60 "$KILLSHIM" "$step" /spec.yml -- "$HUTCH" create k3 --template micro
	is "$RC" 137 "3a/$step: create was SIGKILLed"
	like "$ERR" "^killshim: killed [0-9]+ at $step: " "3a/$step: killed at the $step step"
	ok "3a/$step: spec.yml is never empty" test ! -e "$spec" -o -s "$spec"
	if [ $step = dirsync ]; then
		ok "3a/$step: the new spec.yml is in place" test -s "$spec"
		run hutch inspect k3
		is "$RC" 0 "3a/$step: the new spec parses"
	else
		ok "3a/$step: no spec.yml under the final name" test ! -e "$spec"
		run hutch inspect k3
		is "$RC" 1 "3a/$step: inspect does not find a VM"
		like "$ERR" "no VM named 'k3'" "3a/$step: inspect says no VM (a stray tmp file is not read as state)"
		[ "$(state_of k3)" = absent ] || half_created=$((half_created + 1))
		run hutch create k3 --template micro
		is "$RC" 0 "3a/$step: create works again after the kill"
	fi
	run hutch list -a
	like "$OUT" '^k3 +stopped' "3a/$step: k3 is a normal stopped VM"
	ok "3a/$step: the op lock was released" eval '"$HUTCH" destroy k3 >/dev/null'
	ok "3a/$step: destroy removed the VM's dir, stray tmp files included" test ! -e "$V/k3"
done
is "$half_created" 0 "3a: a killed create never leaves a half-created VM in list -a"

section "3a: stray tmp files"
for i in 1 2 3; do
	timeout -k 5 60 "$KILLSHIM" fsync /spec.yml -- "$HUTCH" create k3 --template micro >/dev/null 2>&1
done
run hutch create k3 --template micro
is "$RC" 0 "3a: create succeeds next to stray tmp files"
stray=$(find "$V/k3" -name 'spec.yml.tmp.*' | wc -l)
diag "3a: stray spec.yml.tmp.* files after 3 killed creates and 1 good one: $stray"
is "$stray" 0 "3a: stray tmp files of killed writers do not accumulate"
# A stray tmp file with different content next to a good spec is never read.
printf 'k3:\n  source: {template: micro}\n  memory: 2G\n' >"$V/k3/spec.yml.tmp.99999"
run hutch inspect k3 --json
is "$(json_get "$OUT" 'j.get("memory")' 2>/dev/null)" 536870912 "3a: inspect reads spec.yml, never spec.yml.tmp.*"
hutch destroy k3 >/dev/null 2>&1

section "3c: create/destroy SIGKILLed at random moments"
empty=0 unparsable=0 present=0 absent=0 loops=60
# Sleep without forking (a fork costs as much as the whole create on a loaded machine): read -t
# on a FIFO nobody writes to.
mkfifo "$T/c3.fifo"
exec 9<>"$T/c3.fifo"
for i in $(seq $loops); do
	if [ $((i % 2)) -eq 1 ]; then
		"$HUTCH" create r3 --template micro >/dev/null 2>&1 &
	else
		"$HUTCH" destroy r3 >/dev/null 2>&1 &
	fi
	p=$!
	printf -v delay '0.%03d' $((RANDOM % 200))
	read -r -t "$delay" -u 9
	kill -9 $p 2>/dev/null
	wait $p 2>/dev/null
	f=$V/r3/spec.yml
	if [ -e "$f" ]; then
		present=$((present + 1))
		if [ ! -s "$f" ]; then
			empty=$((empty + 1))
		elif ! "$HUTCH" inspect r3 >/dev/null 2>&1; then
			unparsable=$((unparsable + 1))
			diag "3c: loop $i: spec.yml does not parse:" "$(head -c 300 "$f")"
		fi
	else
		absent=$((absent + 1))
	fi
done
diag "3c: $loops kills: spec.yml present $present, absent $absent;" \
	"stray tmp files now: $(find "$V" -name '*.tmp.*' 2>/dev/null | wc -l)"
exec 9>&-
is "$empty" 0 "3c: spec.yml was never empty after a kill"
is "$unparsable" 0 "3c: spec.yml always parsed when present"
hutch destroy r3 >/dev/null 2>&1
run hutch create r3 --template micro
is "$RC" 0 "3c: create works after the kills"
hutch destroy r3 >/dev/null 2>&1

# ------------------------------------------------------------------------------------------------
section "6: ENOSPC on a tiny tmpfs HUTCH_HOME"
if ! unshare -Urm true 2>/dev/null; then
	pass "6: ENOSPC # SKIP unprivileged user namespaces are not available"
else
	E=$T/c6
	mkdir -p "$E/res" "$E/fb"
	ln -s "$FAKE_QEMU" "$E/fb/qemu-system-x86_64"
	# Everything runs inside the namespace (the tmpfs exists only there); results land in $E/res.
	E=$E HUTCH=$HUTCH unshare -Urm bash -c '
		set -u
		r=$E/res
		h=$E/mnt
		mkdir -p "$h"
		mount -t tmpfs -o size=48m tmpfs "$h" || exit 3
		export HUTCH_HOME=$h/home HUTCH_QEMU=$E/fb/qemu-system-x86_64 FAKE_QEMU_MODE=ok
		mkdir "$HUTCH_HOME"
		step() { local n=$1; shift; timeout -k 5 60 "$@" >"$r/$n.out" 2>"$r/$n.err"; echo $? >"$r/$n.rc"; }
		step keep "$HUTCH" create keep --template micro
		step start "$HUTCH" start keep
		step stop0 "$HUTCH" stop keep
		step start2 "$HUTCH" start keep
		cp "$HUTCH_HOME/data/vms/keep/spec.yml" "$r/keep.spec.before"
		cp "$HUTCH_HOME/data/vms/keep/state.json" "$r/keep.state.before" 2>/dev/null
		dd if=/dev/zero of="$h/fill" bs=64k >/dev/null 2>&1
		dd if=/dev/zero of="$h/fill2" bs=1k >/dev/null 2>&1
		step create "$HUTCH" create y --template micro
		step stop "$HUTCH" stop keep
		step list "$HUTCH" list -a
		step inspect "$HUTCH" inspect keep
		cp "$HUTCH_HOME/data/vms/keep/spec.yml" "$r/keep.spec.after"
		cp "$HUTCH_HOME/data/vms/keep/state.json" "$r/keep.state.after" 2>/dev/null
		(cd "$HUTCH_HOME" && find . -name "*.tmp.*") >"$r/tmp.files"
		(cd "$HUTCH_HOME" && find . -path "*/vms/y*") >"$r/y.files"
		# An empty cache and a full disk: building the micro template must fail cleanly.
		rm -rf "$HUTCH_HOME/cache"
		rm -f "$h/fill2"
		step create2 "$HUTCH" create z --template micro
		dd if=/dev/zero of="$h/fill2" bs=1k >/dev/null 2>&1
		step tstart "$HUTCH" start z
		(cd "$HUTCH_HOME" && find cache -type f) >"$r/cache.files"
		rm -f "$h/fill" "$h/fill2"
		step again "$HUTCH" create y --template micro
		for p in $(pgrep -f "$HUTCH_HOME"); do kill -9 "$p"; done
		exit 0
	'
	is "$?" 0 "6: the tmpfs was mounted in a user namespace"
	_last_cmd= # the results below come from files, not from lib.sh's run
	r=$E/res
	is "$(cat "$r/keep.rc")" 0 "6: create on the tmpfs works while there is room"
	is "$(cat "$r/start.rc") $(cat "$r/stop0.rc") $(cat "$r/start2.rc")" "0 0 0" \
		"6: start, stop, start (fake QEMU) work while there is room"
	ok "6: the stop wrote a state.json" test -s "$r/keep.state.before"
	is "$(cat "$r/create.rc")" 1 "6: create on a full disk exits 1"
	contains "$(cat "$r/create.err")" "No space left on device" "6: create says No space left on device"
	like "$(cat "$r/create.err")" "spec\.yml" "6: create's error names the file"
	is "$(grep -c 'spec.yml' "$r/y.files")" 0 "6: no partial spec.yml for the failed create"
	is "$(grep -c . "$r/y.files")" 0 "6: the failed create left nothing behind (no empty VM dir)"
	unlike "$(cat "$r/list.out")" '^y ' "6: list -a does not show the VM whose create failed"
	like "$(cat "$r/list.out")" '^keep +stopped' "6: the existing VM is listed stopped after its stop"
	is "$(cat "$r/stop.rc")" 0 "6: stop on a full disk exits 0"
	is "$(cat "$r/inspect.rc")" 0 "6: the existing VM still inspects"
	ok "6: its spec.yml is unchanged" cmp -s "$r/keep.spec.before" "$r/keep.spec.after"
	ok "6: the old state.json survived the state write that failed for want of space" \
		cmp -s "$r/keep.state.before" "$r/keep.state.after"
	is "$(grep -c . "$r/tmp.files")" 0 "6: no tmp files left behind by failed writes"
	is "$(cat "$r/create2.rc")" 0 "6: create z once there is a little room"
	is "$(cat "$r/tstart.rc")" 1 "6: start that must build the micro template on a full disk exits 1"
	contains "$(cat "$r/tstart.err")" "No space left on device" "6: the template build says No space left on device"
	diag "6: cache files after the failed template build:" "$(cat "$r/cache.files")"
	is "$(grep -Ec '\.tmp|initrd|\.cpio' "$r/cache.files")" 0 "6: the failed template build left no partial cache files"
	is "$(cat "$r/again.rc")" 0 "6: create works again once there is room"
fi

# ------------------------------------------------------------------------------------------------
section "7: QMP faults from a fake QEMU under a real monitor"
mkdir -p "$T/fb"
ln -s "$FAKE_QEMU" "$T/fb/qemu-system-x86_64"
FQ=$T/fb/qemu-system-x86_64
run hutch create f7 --template micro
is "$RC" 0 "7: create f7"
log7=$V/f7/qemu.log
for m in ok events-first event-flood; do
	run env HUTCH_QEMU="$FQ" FAKE_QEMU_MODE=$m timeout -k 5 60 "$HUTCH" start --timeout 20 f7
	is "$RC" 0 "7/$m: start succeeds"
	like "$OUT" '^started f7' "7/$m: prints started"
	is "$(qemu_count)" 1 "7/$m: one (fake) QEMU"
	ok "7/$m: it is the monitor's child" no_orphan_qemu f7
	run timeout -k 5 60 "$HUTCH" stop f7
	is "$RC" 0 "7/$m: stop exits 0"
	ok "7/$m: no QEMU, no monitor after stop" wait_until 20 eval 'no_qemu && no_monitor f7'
done
for m in no-greeting bad-greeting eof-mid-reply no-reply oversized bad-json crash; do
	case $m in
	no-greeting) want='no greeting' ;;
	bad-greeting) want='expected the greeting' ;;
	eof-mid-reply) want='connection closed' ;;
	no-reply) want='no reply' ;;
	oversized) want='larger than 10 MiB' ;;
	bad-json) want='malformed' ;;
	crash) want='exited|status 1' ;;
	esac
	run env HUTCH_QEMU="$FQ" FAKE_QEMU_MODE=$m timeout -k 5 60 "$HUTCH" start --timeout 3 f7
	is "$RC" 1 "7/$m: start fails (exit 1, no hang)"
	like "$ERR" "$want" "7/$m: the error says /$want/"
	contains "$ERR" "$log7" "7/$m: the error names qemu.log"
	ok "7/$m: no QEMU left" wait_until 10 no_qemu
	ok "7/$m: no monitor left" wait_until 10 no_monitor f7
	is "$(state_of f7)" stopped "7/$m: f7 is reported stopped"
done
contains "$(cat "$log7")" "simulated crash" "7: qemu.log has what the crashed QEMU said"
# The monitor killed mid-handshake: the fake QEMU must die with it, and the CLI must not hang.
HUTCH_QEMU="$FQ" FAKE_QEMU_MODE=no-reply timeout -k 5 90 "$HUTCH" start --timeout 60 f7 >"$T/c7.out" 2>"$T/c7.err" &
cli=$!
if wait_until 20 have_qemu; then
	for p in $(monitor_pid f7); do kill -9 "$p"; done
	ok "7/monitor-killed: the fake QEMU exits when its monitor dies" wait_until 10 no_qemu
	wait $cli
	is "$?" 1 "7/monitor-killed: start fails instead of waiting"
	like "$(cat "$T/c7.err")" 'monitor' "7/monitor-killed: the error mentions the monitor"
	is "$(state_of f7)" stopped "7/monitor-killed: f7 is reported stopped"
else
	fail "7/monitor-killed: the fake QEMU started" "$(cat "$T/c7.out" "$T/c7.err")"
	kill $cli
fi
hutch destroy f7 >/dev/null 2>&1

# ------------------------------------------------------------------------------------------------
section "8: bad names and sun_path overflow"
home_saved=$HUTCH_HOME
export HUTCH_HOME=$T/h8
mkdir -p "$HUTCH_HOME"
long=$(printf 'a%.0s' $(seq 64))
for bad in '../x' 'a/b' '' "$long"; do
	for verb in create start; do
		if [ $verb = create ]; then run hutch create "$bad" --template micro; else run hutch start "$bad"; fi
		is "$RC" 1 "8: $verb '${bad:0:10}' exits 1"
		like "$ERR" 'invalid VM name|must not be empty' "8: $verb '${bad:0:10}' says invalid VM name"
	done
	is "$(find "$HUTCH_HOME" -mindepth 1 2>/dev/null | wc -l)" 0 "8: '${bad:0:10}' created no files"
done
# A HUTCH_HOME so long that every socket path overflows sun_path.
HUTCH_HOME=$T/$(printf 'd%.0s' $(seq 110))
export HUTCH_HOME
mkdir -p "$HUTCH_HOME"
run hutch create demo --template micro
run hutch start demo
is "$RC" 1 "8: start under an overlong HUTCH_HOME exits 1"
contains "$ERR" "$HUTCH_HOME/run/demo/" "8: the error names the socket path"
like "$ERR" 'longer than|too long' "8: the error says it is too long"
is "$(qemu_count)" 0 "8: no QEMU was started"
ok "8: no runtime dir was made" test ! -e "$HUTCH_HOME/run/demo"
hutch destroy demo >/dev/null 2>&1
# A HUTCH_HOME where short names fit and a 63-character name overflows.
h=$T/n
while [ ${#h} -lt 60 ]; do h=${h}n; done
export HUTCH_HOME=$h
mkdir -p "$HUTCH_HOME"
n63=${long:1}
run hutch create "$n63" --template micro
if [ "$RC" -ne 0 ]; then
	like "$ERR" "socket|sun_path|too long|longer than" "8: create refuses a name whose socket path overflows"
else
	run hutch start "$n63"
	is "$RC" 1 "8: start of a VM whose socket path overflows exits 1"
	contains "$ERR" "$HUTCH_HOME/run/$n63/" "8: the error names the socket path"
fi
is "$(qemu_count)" 0 "8: no QEMU was started for the overflowing name"
ok "8: no monitor was left for it" no_monitor "$n63"
hutch destroy "$n63" >/dev/null 2>&1
export HUTCH_HOME=$home_saved

# ------------------------------------------------------------------------------------------------
section "9: hostile YAML via create --from"
D9=$T/c9
mkdir -p "$D9"
# maxrss_of CMD...: run CMD, set RC/OUT/ERR like run, and MAXRSS (KiB) of the process.
maxrss_of()
{
	MAXRSS=$(python3 -c '
import resource, subprocess, sys
with open(sys.argv[1], "w") as o, open(sys.argv[2], "w") as e:
    rc = subprocess.run(sys.argv[3:], stdout=o, stderr=e).returncode
print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' "$T/.out" "$T/.err" "$@")
	RC=${MAXRSS% *}
	MAXRSS=${MAXRSS#* }
	OUT=$(cat "$T/.out")
	ERR=$(cat "$T/.err")
	_last_cmd="$*"
}
{
	printf 'x9:\n  source: {template: micro}\n  memory: 512M\n'
	printf 'l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
	for i in 1 2 3 4 5 6 7 8 9; do
		j=$((i - 1))
		printf 'l%d: &l%d [*l%d,*l%d,*l%d,*l%d,*l%d,*l%d,*l%d,*l%d,*l%d,*l%d]\n' $i $i $j $j $j $j $j $j $j $j $j $j
	done
	printf 'bomb:\n  source: {template: micro}\n  cmdline: *l9\n'
} >"$D9/bomb.yml"
{
	printf 'x9:\n  source: {template: micro}\n'
	python3 -c 'import sys; sys.stdout.write(("# " + "x" * 1021 + "\n") * 10240)'
} >"$D9/big.yml"
printf 'x9:\n  source: {template: micro}\n  color: "gr\xffen"\n' >"$D9/latin1.yml"
printf 'x9:\n  # caf\xe9\n  source: {template: micro}\n' >"$D9/comment.yml"
printf 'x9:\n  source: {template: micro}\n  color: "a\x00b"\n' >"$D9/nul.yml"
{
	printf 'x9:\n  source: {template: micro}\n  cmdline: '
	python3 -c 'import sys; sys.stdout.write("[" * 100000 + "]" * 100000 + "\n")'
} >"$D9/deep.yml"
for c in "bomb:4:anchors and aliases" "big::larger than the limit" "latin1:3:UTF-8" "comment:2:UTF-8" \
	"nul:3:invalid character|UTF-8|NUL" "deep:3:nesting is too deep"; do
	name=${c%%:*}
	rest=${c#*:}
	line=${rest%%:*}
	want=${rest#*:}
	f=$D9/$name.yml
	maxrss_of timeout -k 5 30 "$HUTCH" create x9 --from "$f"
	is "$RC" 1 "9/$name: create --from exits 1 (no hang)"
	if [ -n "$line" ]; then
		contains "$ERR" "$f:$line:" "9/$name: the error names the file and line $line"
	else
		contains "$ERR" "$f" "9/$name: the error names the file"
	fi
	like "$ERR" "$want" "9/$name: the error says /$want/"
	ok "9/$name: bounded memory (max RSS ${MAXRSS} KiB < 200 MiB)" test "${MAXRSS:-999999}" -lt 204800
	ok "9/$name: no VM was created" test ! -e "$V/x9"
done

# ------------------------------------------------------------------------------------------------
section "11: SIGTERM, SIGINT and SIGPIPE to the CLI mid-operation"
run hutch create t11 --template micro
is "$RC" 0 "11: create t11"
# SIGTERM while start waits for the guest.
"$HUTCH" start t11 >"$T/c11.out" 2>"$T/c11.err" &
cli=$!
if wait_until 30 have_qemu; then
	kill -TERM $cli
	wait $cli
	rc=$?
	ok "11/TERM-start: the CLI ended (status $rc)" test "$rc" -ne 0 -o -s "$T/c11.out"
	ok "11/TERM-start: no QEMU without its monitor" no_orphan_qemu t11
	ok "11/TERM-start: the VM settles running under its monitor, or stopped" wait_until 120 settled t11
	ok "11/TERM-start: still no QEMU without its monitor" no_orphan_qemu t11
	diag "11/TERM-start: after SIGTERM the VM is $(state_of t11)"
else
	fail "11/TERM-start: QEMU started" "$(cat "$T/c11.out" "$T/c11.err")"
	kill $cli
fi
run hutch stop t11
is "$RC" 0 "11/TERM-start: stop exits 0 (locks released)"
ok "11/TERM-start: no QEMU after stop" wait_until 30 no_qemu

# Ctrl-C: SIGINT to the CLI's whole process group while start waits.
setsid "$HUTCH" start t11 >"$T/c11.out" 2>"$T/c11.err" &
cli=$!
if wait_until 30 have_qemu; then
	kill -INT -- -$cli 2>/dev/null || kill -INT $cli
	wait $cli
	ok "11/INT-start: no QEMU without its monitor" no_orphan_qemu t11
	ok "11/INT-start: the VM settles running under its monitor, or stopped" wait_until 120 settled t11
	diag "11/INT-start: after Ctrl-C the VM is $(state_of t11)"
else
	fail "11/INT-start: QEMU started" "$(cat "$T/c11.out" "$T/c11.err")"
	kill $cli
fi
if [ "$(state_of t11)" != running ]; then
	run hutch start t11
	is "$RC" 0 "11/INT-start: start works afterwards"
else
	pass "11/INT-start: the VM is running"
fi

# SIGPIPE: exec streaming into a pipe whose reader goes away.
run bash -c 'timeout -k 5 15 "$HUTCH" exec t11 -- yes | head -1; echo "${PIPESTATUS[0]}" >"$0"' "$T/c11.rc"
is "$OUT" y "11/PIPE-exec: the reader got its line"
rc=$(cat "$T/c11.rc")
ok "11/PIPE-exec: the CLI ended on the closed pipe, not by the timeout (status $rc)" test "$rc" != 124 -a "$rc" != 137
run timeout -k 5 30 "$HUTCH" exec t11 -- sh -c 'sleep 1; ps | grep -c "[y]es$" || true'
is "$OUT" 0 "11/PIPE-exec: the guest's yes was hung up"
ok "11/PIPE-exec: the VM still runs under its monitor" settled t11
# SIGPIPE: list into a closed pipe.
run bash -c '"$HUTCH" list -a | (exec 0<&-; true); echo "${PIPESTATUS[0]}"'
like "$OUT" '^(0|1|141)$' "11/PIPE-list: list ended cleanly or by SIGPIPE (status $OUT)"
# SIGTERM while stop waits: the monitor finishes the stop on its own.
"$HUTCH" stop t11 >/dev/null 2>&1 &
cli=$!
sleep 0.3
kill -TERM $cli 2>/dev/null
wait $cli
ok "11/TERM-stop: the VM stops anyway, QEMU and monitor gone" wait_until 60 eval 'no_qemu && no_monitor t11'
is "$(state_of t11)" stopped "11/TERM-stop: t11 is stopped"
# SIGPIPE: start's output into a closed pipe: it runs to the end and the VM runs.
run bash -c 'timeout -k 5 150 "$HUTCH" start t11 | (exec 0<&-; sleep 0); echo "${PIPESTATUS[0]}"'
ok "11/PIPE-start: no QEMU without its monitor" no_orphan_qemu t11
ok "11/PIPE-start: the VM settles running under its monitor, or stopped" wait_until 120 settled t11
run hutch stop t11
is "$RC" 0 "11: stop exits 0 (no lock was left behind)"
ok "11: no QEMU after stop" wait_until 30 no_qemu
run hutch destroy t11
is "$RC" 0 "11: destroy t11"

done_testing
