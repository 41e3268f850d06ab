#!/usr/bin/env bash
# A damaged warm template never hangs a VM: a flipped byte, a truncated state file, a state file
# that passes the checksum but that QEMU cannot load, a broken meta.json: each gives a cold boot and
# one warning, and the next run makes the template again. A changed spec makes a new template.
# once
# timeout: 1200
. "$(dirname "$0")/lib.sh"
exec </dev/null

tdir()
{
	json_get "$(hutch template ls --json)" '[t["dir"] for t in j if t["name"] == "'"$1"'"][0]'
}

# damaged DESC PATTERN: one run --rm boots cold with exactly one warning matching PATTERN; the next
# one makes the template again and restores from it.
damaged()
{
	run hutch -v run --rm micro -- echo hi
	is "$RC" 0 "$1: run --rm still works"
	is "$OUT" hi "$1: the program ran"
	like "$ERR" "$2" "$1: the warning says what is wrong"
	is "$(grep 'warning' <<<"$ERR" | grep -vc 'using TCG')" 1 "$1: one warning line (beside TCG's)"
	unlike "$ERR" 'restored from template' "$1: it booted cold"
	run hutch -v run --rm micro -- true
	like "$ERR" 'made warm template micro' "$1: the next run makes the template again"
	like "$ERR" 'restored from template micro' "$1: and restores from it"
}

HUTCH_CMD_TIMEOUT=600 run hutch template save micro
is "$RC" 0 "template save micro"

dir=$(tdir micro)
size=$(stat -c %s "$dir/state")
printf '\x5a' | dd of="$dir/state" bs=1 seek=$((size / 2)) conv=notrunc status=none
damaged "a flipped byte" "checksum does not match"

dir=$(tdir micro)
truncate -s 4096 "$dir/state"
damaged "a truncated state file" "state file is missing or has the wrong size"

# Garbage with a matching size and checksum: QEMU itself refuses it, and exits.
dir=$(tdir micro)
head -c 65536 /dev/urandom >"$dir/state"
python3 - "$dir" <<'PY'
import hashlib, json, os, sys
d = sys.argv[1]
m = json.load(open(d + "/meta.json"))
data = open(d + "/state", "rb").read()
m["state_bytes"] = len(data)
m["state_sha256"] = hashlib.sha256(data).hexdigest()
json.dump(m, open(d + "/meta.json", "w"))
PY
damaged "a state file QEMU cannot load" "restoring from warm template 'micro' failed"

dir=$(tdir micro)
echo '{not json' >"$dir/meta.json"
damaged "a broken meta.json" "no readable meta.json"

# A different spec is a different template: the old one goes.
run hutch create k --template micro --memory 256M
run hutch -v run --rm k -- true
like "$ERR" 'made warm template k' "k's first run makes its template"
old=$(tdir k)
run hutch destroy k
run hutch create k --template micro --memory 320M
run hutch -v run --rm k -- true
like "$ERR" 'made warm template k' "k with more memory makes a new template"
like "$ERR" 'restored from template k' "and restores from it"
new=$(tdir k)
[ "$old" != "$new" ] && [ ! -e "$old" ] && pass "the old template of k is gone" ||
	fail "the old template of k is gone" "old $old, new $new"
is "$(json_get "$(hutch template ls --json)" '[t["mem_bytes"] for t in j if t["name"] == "k"]')" "[$((320 << 20))]" \
	"one template of k, with 320M"

ok "no QEMU left" wait_until 30 no_qemu
done_testing
