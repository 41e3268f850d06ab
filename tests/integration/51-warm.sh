#!/usr/bin/env bash
# Warm templates (src/lib/warm.c): run --rm restores micro VMs from a saved template. Clones answer
# exec, each with its own hostname, machine-id, RNG state and the host's clock; template ls|save|rm;
# --cold boots; inspect and run -v say where a clone came from.
# once
# timeout: 900
. "$(dirname "$0")/lib.sh"
exec </dev/null

run hutch template ls --json
is "$RC" 0 "template ls --json with no templates"
is "$(json_get "$OUT" 'len(j)')" 0 "no templates at first"

HUTCH_CMD_TIMEOUT=600 run hutch template save micro
is "$RC" 0 "template save micro"
like "$OUT" '^saved warm template micro' "save says so"
run hutch template ls --json
is "$(json_get "$OUT" 'len(j)')" 1 "one template listed"
is "$(json_get "$OUT" 'j[0]["name"]')" micro "it is micro"
is "$(json_get "$OUT" 'j[0]["mem_bytes"] > 0 and j[0]["state_bytes"] > 0')" True "ls gives sizes"
run hutch template ls
like "$OUT" '^micro +[0-9a-f]{16} ' "plain ls has a row for micro"
mem=$(json_get "$(hutch template ls --json)" 'j[0]["dir"]')/mem
ls -l "$mem" | grep -q '^-rw-------' && pass "the memory file is private to the user (0600)" ||
	fail "the memory file is private to the user (0600)" "$(ls -l "$mem")"

# Two clones one after the other: what each says of itself right after its restore.
probe='uname -n; cat /etc/machine-id; head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n"; echo; date +%s'
run hutch -v run --rm micro -- sh -c "$probe"
is "$RC" 0 "run --rm micro (clone 1)"
like "$ERR" '^hutch: restored from template micro in [0-9]+ ms' "run -v says it was restored from the template"
c1=$OUT
host_now=$(date +%s)
run hutch run --rm micro -- sh -c "$probe"
is "$RC" 0 "run --rm micro (clone 2)"
c2=$OUT
h1=$(sed -n 1p <<<"$c1") h2=$(sed -n 1p <<<"$c2")
like "$h1" '^micro-[0-9a-f]{8}$' "clone 1's hostname is its instance name"
[ "$h1" != "$h2" ] && pass "clones have distinct hostnames" || fail "clones have distinct hostnames" "$h1 = $h2"
m1=$(sed -n 2p <<<"$c1") m2=$(sed -n 2p <<<"$c2")
like "$m1" '^[0-9a-f]{32}$' "clone 1 has a machine-id"
[ "$m1" != "$m2" ] && pass "clones have distinct machine-ids" || fail "clones have distinct machine-ids" "$m1 = $m2"
r1=$(sed -n 3p <<<"$c1") r2=$(sed -n 3p <<<"$c2")
like "$r1" '^[0-9a-f]{64}$' "clone 1 read 32 bytes of /dev/urandom"
[ "$r1" != "$r2" ] && pass "two clones' first 32 bytes of /dev/urandom differ" ||
	fail "two clones' first 32 bytes of /dev/urandom differ" "$r1 = $r2"
t1=$(sed -n 4p <<<"$c1") t2=$(sed -n 4p <<<"$c2")
d=$((t1 - host_now))
[ ${d#-} -le 10 ] && pass "clone 1's clock is within a few seconds of the host's" ||
	fail "clone 1's clock is within a few seconds of the host's" "guest $t1, host $host_now"
d=$(($(date +%s) - t2))
[ ${d#-} -le 10 ] && pass "clone 2's clock is within a few seconds of the host's" ||
	fail "clone 2's clock is within a few seconds of the host's" "guest $t2, host $(date +%s)"

# A running clone answers exec, and inspect says where it came from.
"$HUTCH" run --rm micro -- sleep 300 >"$T/bg.out" 2>&1 &
bg=$!
clone_up()
{
	name=$(vm_names | grep '^micro-' | head -1)
	[ -n "$name" ] && hutch exec "$name" -- true 2>/dev/null
}
if wait_until 120 clone_up; then
	pass "a clone in the background answers exec"
	run hutch exec "$name" -- uname -n
	is "$OUT" "$name" "exec in the clone sees its own hostname"
	run hutch inspect "$name"
	like "$OUT" '^restored from template micro in [0-9]+ ms' "inspect says the VM was restored from the template"
	run hutch inspect "$name" --json
	is "$(json_get "$OUT" 'j.get("restored_from")')" micro "inspect --json: restored_from"
else
	fail "a clone in the background answers exec" "$(cat "$T/bg.out")"
fi
kill "$bg" 2>/dev/null
wait "$bg" 2>/dev/null
gone() { [ -z "$(vm_names | grep '^micro-')" ]; }
ok "the background clone is gone after its run is killed" wait_until 60 gone

run hutch -v run --rm --cold micro -- true
is "$RC" 0 "run --rm --cold"
unlike "$ERR" 'restored from template' "--cold boots instead of restoring"
run hutch run --cold micro -- true
is "$RC" 2 "--cold without --rm is a usage error"

# A defined VM gets a template of its own on first use, keyed by its spec (256M here).
run hutch create small --template micro --memory 256M
is "$RC" 0 "create small (256M)"
run hutch -v run --rm small -- cat /proc/meminfo
is "$RC" 0 "run --rm small"
like "$ERR" 'made warm template small' "the first run makes small's template"
like "$ERR" 'restored from template small' "and restores from it"
run hutch template ls --json
is "$(json_get "$OUT" 'sorted(t["name"] for t in j)')" "['micro', 'small']" "two templates listed"
is "$(json_get "$OUT" '[t["mem_bytes"] for t in j if t["name"] == "small"][0]')" $((256 << 20)) "small's template has 256M"

run hutch template rm small micro
is "$RC" 0 "template rm small micro"
run hutch template ls --json
is "$(json_get "$OUT" 'len(j)')" 0 "no templates left"
run hutch template rm micro
is "$RC" 1 "template rm of a missing template fails"
like "$ERR" "no warm template named 'micro'" "and says so"
[ ! -e "$mem" ] && pass "the template's files are gone" || fail "the template's files are gone"

ok "no QEMU left" wait_until 30 no_qemu
done_testing
