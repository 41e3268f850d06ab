#!/usr/bin/env bash
# once
# timeout: 2400
# Warm templates of an image VM (src/lib/warm_image.c): template save boots the Debian 12 cloud
# image once (UEFI with a TPM: the harder path; the BIOS argv is covered by tests/unit/test_warm.c)
# on an overlay of its own, which becomes the template's frozen disk, with a fresh NVRAM, frozen with
# it; each run --rm clone restores from it on a fresh overlay, a private copy of the NVRAM and a
# swtpm of its own that loads the template's TPM state. Two clones at once: each writes a file the
# other does not see, clone A writes an EFI variable that reaches its own NVRAM file only, both
# TPMs answer, each has its own hostname and machine-id, and the template's disk and NVRAM are
# unchanged.
. "$(dirname "$0")/lib.sh"
exec </dev/null

here=$(cd "$(dirname "$0")" && pwd)
IMG=debian-12-hutch-amd64.qcow2
SECTIONS="save clones isolation template-unchanged cache"
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
  firmware: uefi
  tpm: true
  ssh: {key: generate}
EOF
run hutch create img --from "$T/hutch.yml"
is "$RC" 0 "create img (the cloud image, UEFI, TPM)"
V=$HUTCH_HOME/data/vms

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
nvram=$dir/nvram.fd
ls -l "$nvram" 2>&1 | grep -q '^-r--------' && pass "the template keeps its NVRAM, read-only (0400)" ||
	fail "the template keeps its NVRAM, read-only (0400)" "$(ls -la "$dir")"
is "$(json_get "$(cat "$dir/meta.json")" '[j["nvram_sha256"], j["nvram_bytes"]]')" \
	"['$(sha256sum "$nvram" | cut -d' ' -f1)', $(stat -c %s "$nvram")]" "meta.json records the NVRAM's checksum and size"
ok "the template keeps no swtpm state (the TPM's is in its device state)" test ! -e "$dir/tpm"
before=$(cd "$dir" && sha256sum disk.qcow2 seed.iso clone.qcow2 nvram.fd mem state)

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
run hutch exec "$a" -- test -d /sys/firmware/efi
is "$RC" 0 "clone A runs on UEFI (/sys/firmware/efi)"
cnv=$V/$a/clone-nvram.fd
[ -f "$cnv" ] && [ ! -L "$cnv" ] && [ "$(stat -c %i "$cnv")" != "$(stat -c %i "$nvram")" ] &&
	[ "$(stat -c %s "$cnv")" = "$(stat -c %s "$nvram")" ] && pass "clone A has an NVRAM file of its own" ||
	fail "clone A has an NVRAM file of its own" "$(ls -li "$V/$a" "$nvram" 2>&1)"
# a non-volatile EFI variable: efivarfs takes 4 bytes of attributes (NON_VOLATILE|BOOTSERVICE|RUNTIME)
# and the data in one write; OVMF keeps the data as it is in the flash, which QEMU writes through
efivar=/sys/firmware/efi/efivars/HutchTest-4a0b2d52-8e1f-4c1b-9f61-6875746368aa
token=hutch-clone-a-$$-$RANDOM
run hutch exec "$a" -- python3 -c '
import sys
open(sys.argv[1], "wb").write(b"\x07\x00\x00\x00" + sys.argv[2].encode())' "$efivar" "$token"
is "$RC" 0 "clone A writes an EFI variable"
ok "... which reaches clone A's NVRAM file" grep -qaF "$token" "$cnv"
grep -qaF "$token" "$nvram" && fail "... and not the template's" "$nvram holds $token" ||
	pass "... and not the template's"
# reading a PCR is a TPM2_PCR_Read to the clone's swtpm: it answers only with the template's state
# loaded (a TPM that missed its startup fails every command)
run hutch exec "$a" -- sh -c 'cat /sys/class/tpm/tpm0/tpm_version_major /sys/class/tpm/tpm0/pcr-sha256/0'
is "$(sed -n 1p <<<"$OUT")" 2 "clone A has a TPM 2.0"
pa=$(sed -n 2p <<<"$OUT")
like "$pa" '^[0-9A-Fa-f]{64}$' "clone A's TPM answers (PCR 0 reads)"
unlike "$pa" '^0+$' "... with the firmware's measurements of the template's boot in it"
ok "clone A runs a swtpm of its own (state in its VM dir)" test -d "$V/$a/tpm"

section "isolation"
probe='cat /var/tmp/who 2>/dev/null || echo none; echo from-b >/var/tmp/who && sync && cat /var/tmp/who; uname -n; cat /etc/machine-id; ls /sys/firmware/efi/efivars | grep -c ^HutchTest- || true; cat /sys/class/tpm/tpm0/pcr-sha256/0'
run hutch -v run --rm img -- sh -c "$probe"
is "$RC" 0 "clone B runs while A does"
like "$ERR" 'restored from template img in [0-9]+ ms' "run -v says clone B was restored from img"
diag "clone B: $(grep -o 'restored from template img in [0-9]* ms' <<<"$ERR")"
unlike "$ERR" 'host key' "clone B presents the host key its run expects (the template's)"
is "$(sed -n 1p <<<"$OUT")" none "clone B does not see clone A's file"
is "$(sed -n 2p <<<"$OUT")" from-b "clone B reads back what it wrote"
hb=$(sed -n 3p <<<"$OUT") mb=$(sed -n 4p <<<"$OUT")
is "$(sed -n 5p <<<"$OUT")" 0 "clone B does not see clone A's EFI variable"
is "$(sed -n 6p <<<"$OUT")" "$pa" "clone B's TPM answers with the template's measurements (PCR 0 as clone A's)"
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
after=$(cd "$dir" && sha256sum disk.qcow2 seed.iso clone.qcow2 nvram.fd mem state)
is "$after" "$before" "the template's disk, seed, overlay, NVRAM, memory and state are unchanged"
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

ok "no QEMU left" wait_until 60 no_qemu
done_testing
