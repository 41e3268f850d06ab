#!/usr/bin/env bash
# once
# timeout: 2400
# Warm templates of an image VM (src/lib/warm_image.c): template save boots the Debian 12 cloud
# image once on an overlay of its own, which becomes the template's frozen disk; each run --rm clone
# restores from it on a fresh overlay of its own. Two clones at once: each writes a file the other
# does not see, each has its own hostname and machine-id, and the template's disk is unchanged. A
# UEFI image VM cannot be a template yet, and says so.
. "$(dirname "$0")/lib.sh"
exec </dev/null

here=$(cd "$(dirname "$0")" && pwd)
IMG=debian-12-hutch-amd64.qcow2
SECTIONS="save clones isolation template-unchanged cache uefi"
BOOT_TIMEOUT=1500 # a bound, not an expectation: under load 20 one cloud boot took 7 min here
. "$here/cloud.sh"
cloud_fixture
cloud_serve "$T/requests.log"

cat >"$T/hutch.yml" <<EOF
img:
  source:
    image: $base/files/$IMG
    checksum: sha256:$base/files/SHA256SUMS
  disk: 8G
  memory: 1G
  ssh: {key: generate}
efi:
  source:
    image: $base/files/$IMG
    checksum: sha256:$base/files/SHA256SUMS
  firmware: uefi
EOF
run hutch create img --from "$T/hutch.yml"
is "$RC" 0 "create img (the cloud image)"

section "template save img"
HUTCH_CMD_TIMEOUT=$((BOOT_TIMEOUT + 60)) run hutch template save --timeout "$BOOT_TIMEOUT" img
is "$RC" 0 "template save img"
if [ "$RC" -ne 0 ]; then
	diag "$ERR" "$(tail -n 30 "$HUTCH_HOME"/cache/warm/img/.failed-console.log 2>&1)"
	done_testing
	exit 1
fi
like "$OUT" '^saved warm template img' "save says so"
run hutch template ls --json
dir=$(json_get "$OUT" '[t["dir"] for t in j if t["name"] == "img"][0]')
disk=$dir/disk.qcow2
[ -f "$disk" ] && [ -f "$dir/clone.qcow2" ] && [ -f "$dir/seed.iso" ] &&
	pass "the template holds its disk, its seed and the clones' empty overlay" ||
	fail "the template holds its disk, its seed and the clones' empty overlay" "$(ls -la "$dir")"
ls -l "$disk" | grep -q '^-r--------' && pass "the template's disk is read-only (0400)" ||
	fail "the template's disk is read-only (0400)" "$(ls -l "$disk")"
is "$(qemu-img info --output=json -U "$dir/clone.qcow2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["backing-filename"])')" \
	"$disk" "the clones' overlay is backed by the template's disk"
is "$(json_get "$(cat "$dir/meta.json")" 'j["disk_sha256"]')" "$(sha256sum "$disk" | cut -d' ' -f1)" \
	"meta.json records the disk's checksum"
before=$(cd "$dir" && sha256sum disk.qcow2 seed.iso clone.qcow2 mem state)

# ==== two clones at once ====
section "clones"
"$HUTCH" -v run --rm img -- sleep 900 >"$T/a.out" 2>"$T/a.err" &
bg=$!
clone_up()
{
	a=$(vm_names | grep '^img-' | head -1)
	[ -n "$a" ] && hutch exec "$a" -- true 2>/dev/null
}
if ! wait_until 600 clone_up; then
	fail "a clone of img answers exec" "$(cat "$T/a.err")"
	kill "$bg" 2>/dev/null
	done_testing
	exit 1
fi
pass "a clone of img answers exec"
run hutch inspect "$a" --json
is "$(json_get "$OUT" 'j.get("restored_from")')" img "inspect: clone A was restored from img"
run hutch exec "$a" -- sh -c 'echo from-a >/var/tmp/who && sync && cat /var/tmp/who; uname -n; cat /etc/machine-id'
is "$RC" 0 "clone A writes /var/tmp/who"
is "$(sed -n 1p <<<"$OUT")" from-a "clone A reads back what it wrote"
is "$(sed -n 2p <<<"$OUT")" "$a" "clone A's hostname is its instance name"
ma=$(sed -n 3p <<<"$OUT")
run hutch exec "$a" -- sh -c 'cat /etc/hostname; grep "^127.0.1.1" /etc/hosts; ls /sys/bus/acpi/devices | grep -c "^QEMUVGID:"'
is "$(sed -n 1p <<<"$OUT")" "$a" "clone A's /etc/hostname names it"
# cloud-init (manage_etc_hosts: localhost) mapped the template's name there
like "$(sed -n 2p <<<"$OUT")" "^127\.0\.1\.1[[:space:]].*$a" "clone A's /etc/hosts maps its own name to 127.0.1.1"
unlike "$(sed -n 2p <<<"$OUT")" '[[:space:]]img([.[:space:]]|$)' "clone A's /etc/hosts no longer maps the template's name"
# (Debian's cloud kernel has no vmgenid driver, CONFIG_VMGENID; the generic one has: the agent's
# reseed covers both)
is "$(tail -n 1 <<<"$OUT")" 1 "clone A has the VM generation ID's ACPI device"

section "isolation"
probe='cat /var/tmp/who 2>/dev/null || echo none; echo from-b >/var/tmp/who && sync && cat /var/tmp/who; uname -n; cat /etc/machine-id'
run hutch -v run --rm img -- sh -c "$probe"
is "$RC" 0 "clone B runs while A does"
like "$ERR" 'restored from template img in [0-9]+ ms' "run -v says clone B was restored from img"
unlike "$ERR" 'host key' "clone B presents the host key its run expects (the template's)"
is "$(sed -n 1p <<<"$OUT")" none "clone B does not see clone A's file"
is "$(sed -n 2p <<<"$OUT")" from-b "clone B reads back what it wrote"
hb=$(sed -n 3p <<<"$OUT") mb=$(sed -n 4p <<<"$OUT")
like "$hb" '^img-[0-9a-f]{8}$' "clone B's hostname is its instance name"
[ "$hb" != "$a" ] && pass "the clones have distinct hostnames" || fail "the clones have distinct hostnames" "$hb = $a"
like "$ma" '^[0-9a-f]{32}$' "clone A has a machine-id"
[ "$ma" != "$mb" ] && pass "the clones have distinct machine-ids" ||
	fail "the clones have distinct machine-ids" "$ma = $mb"
run hutch exec "$a" -- cat /var/tmp/who
is "$OUT" from-a "clone A does not see clone B's file"
like "$(cat "$T/a.err")" 'restored from template img in [0-9]+ ms' "run -v says clone A was restored from img"

run hutch stop "$a"
is "$RC" 0 "stop clone A"
wait "$bg" 2>/dev/null
gone() { [ -z "$(vm_names | grep '^img-')" ]; }
ok "both clones are gone" wait_until 60 gone

section "template-unchanged"
after=$(cd "$dir" && sha256sum disk.qcow2 seed.iso clone.qcow2 mem state)
is "$after" "$before" "the template's disk, seed, overlay, memory and state are unchanged"
run hutch -v run --rm img -- cat /var/tmp/who
is "$OUT" "" "a third clone sees neither file"
like "$ERR" 'restored from template img' "and was restored too"

section "cache"
# the base under the template's frozen disk is in use: image rm refuses, naming the template, and
# prune keeps it; destroy img takes its template along, and then the base is free
url=$base/files/$IMG
run hutch image rm "$url"
is "$RC" 1 "image rm of the template's base fails"
like "$ERR" "warm template img" "... naming the warm template"
run hutch image prune
is "$RC" 0 "image prune"
run hutch image ls
like "$OUT" "$IMG" "image prune keeps the template's base"
run hutch destroy img
is "$RC" 0 "destroy img"
ok "its warm template went with it" test ! -e "$dir"
is "$(json_get "$(hutch template ls --json)" '[t["name"] for t in j if t["name"] == "img"]')" "[]" "template ls no longer lists img"

section "uefi"
run hutch create efi --from "$T/hutch.yml"
is "$RC" 0 "create efi (the cloud image, UEFI)"
HUTCH_CMD_TIMEOUT=60 run hutch template save efi
is "$RC" 1 "template save of a UEFI VM fails"
like "$ERR" "UEFI VM cannot be a warm template" "and says why"

ok "no QEMU left" wait_until 60 no_qemu
done_testing
