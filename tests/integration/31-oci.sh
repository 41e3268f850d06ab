#!/usr/bin/env bash
# Disks from container images (issue 15): a two-layer OCI image (with a whiteout and an opaque dir)
# made here from the host's busybox, with root-owned setuid and other-owned files only a tar can
# carry for a user. create --oci builds the root filesystem once (cached by manifest digest) with
# ownership and modes exact, boots it under micro's kernel with the disk as root, exec works, run
# with no command runs the image's Cmd with its Env, WorkingDir and User. A docker-archive and an
# oci-archive of the same image give the same disk bytes. A warm template of the VM gives run --rm
# clones on overlays of their own. Faults are clear errors that leave nothing in the cache.
# once
# timeout: 1500
. "$(dirname "$0")/lib.sh"
exec </dev/null

img=$T/img
make_image() { python3 "$_lib_dir/oci-image.py" --busybox-base "$T/base.tar" &&
	python3 "$_lib_dir/oci-image.py" "$T/base.tar" "$img" --no-kernel >"$T/manifest-digest"; }
ok "a two-layer OCI image layout and its docker-archive are made" make_image
cache=$HUTCH_HOME/cache/oci
entries() { find "$1" -mindepth 1 -maxdepth 1 ! -name tmp 2>/dev/null | sort; }

run hutch create c1 --oci "oci:$img/layout:test" -d 512M --root-size 400M
is "$RC" 0 "create c1 --oci oci:DIR:TAG (a 512M disk, the root capped at 400M)"
manifest=$(cat "$T/manifest-digest")
ok "the root filesystem is cached under the manifest digest" test -f "$cache/${manifest#sha256:}/rootfs.img"
ino=$(stat -c %i "$cache/${manifest#sha256:}/rootfs.img")

cat >"$T/vms.yml" <<EOF
c2:
  source: {oci: "oci:$img/layout:test"}
  memory: 256M
  root_size: 300M
EOF
run hutch create c2 --from "$T/vms.yml"
is "$RC" 0 "create from a spec with source: {oci: REF}"
is "$(entries "$cache" | grep -vc '\.lock$')" 1 "two VMs of one image: one cache entry"
is "$(stat -c %i "$cache/${manifest#sha256:}/rootfs.img")" "$ino" "the second create reused the cached root filesystem"
contains "$(cat "$HUTCH_HOME/data/vms/c2/spec.yml")" "oci: \"oci:$img/layout:test\"" "the VM's spec keeps the oci source"
run hutch inspect --render c2
contains "$OUT" "hutch.root=/dev/vda hutch.rootsize=314572800" "root_size: reaches the guest's command line"
run hutch destroy c2
is "$RC" 0 "destroy c2"

run hutch start c1
is "$RC" 0 "start c1 (micro kernel, the image's disk as root)"
[ "$RC" -eq 0 ] || diag "$(tail -20 "$HUTCH_HOME/data/vms/c1/console.log" 2>/dev/null)"
run hutch exec c1 -- stat -c '%a %U:%G' /usr/bin/sudo
is "$OUT" "4755 root:root" "exec: /usr/bin/sudo is root-owned and setuid, as in the image"
run hutch exec c1 -- stat -c '%a %u:%g' /etc/shadow
is "$OUT" "640 0:42" "exec: /etc/shadow keeps mode 0640 and group 42"
run hutch exec c1 -- stat -c '%u:%g' /etc/owned-by-nobody
is "$OUT" "65534:65534" "exec: a file owned by nobody stays so"
run hutch exec c1 -- stat -c '%a' /root
is "$OUT" "700" "exec: /root keeps 0700"
run hutch exec c1 -- stat -c '%i %h' /bin/ls /bin/busybox
is "$(echo "$OUT" | awk '{print $1}' | sort -u | wc -l)" 1 "exec: the hard link is one inode"
run hutch exec c1 -- test -e /etc/hutch-oci-deleted
is "$RC" 1 "exec: the file a whiteout deleted is absent"
run hutch exec c1 -- cat /etc/hutch-oci-layer2 /opt/hutch-lower/new
is "$OUT" "layer 2 was here
from layer 2" "exec: layer 2's files are there"
run hutch exec c1 -- test -e /opt/hutch-lower/old
is "$RC" 1 "exec: the opaque dir hides what layer 1 put in it"
run hutch run c1
is "$RC" 0 "run with no command runs the image's Cmd"
is "$OUT" "hello from yes in /opt/hutch-lower as root" "run: with the image's Env, WorkingDir and User"

# Warm templates of a container image's VM (src/lib/warm_image.c): template save boots c1's image on
# an overlay of its own, frozen read-only as the template's disk; each run --rm clone restores on a
# fresh overlay of it, so clones do not see each other's files and the template never changes.
run hutch template save c1
is "$RC" 0 "template save c1 (a container image's VM)"
[ "$RC" -eq 0 ] || diag "$ERR" "$(tail -n 20 "$HUTCH_HOME/cache/warm/c1/.failed-console.log" 2>&1)"
tdir=$(json_get "$(hutch template ls --json)" '[t["dir"] for t in j if t["name"] == "c1"][0]' 2>/dev/null)
is "$(cd "$tdir" 2>/dev/null && stat -c '%n %a' disk.qcow2 && ls clone.qcow2 seed.iso 2>/dev/null)" \
	"disk.qcow2 400
clone.qcow2" "the template has its read-only disk and the clones' empty overlay, and no seed"
is "$(json_get "$(cat "$tdir/meta.json")" 'j["base_image"]')" "$cache/${manifest#sha256:}/rootfs.img" \
	"the template's disk is an overlay on the image's cached root filesystem"
before=$(cd "$tdir" && sha256sum disk.qcow2 clone.qcow2 mem state)
"$HUTCH" -v run --rm c1 -- sh -c 'echo from-a >/root/who && busybox sleep 600' >"$T/a.out" 2>"$T/a.err" &
bg=$!
clone_a() { a=$(vm_names | grep '^c1-' | head -1) && [ -n "$a" ] && hutch exec "$a" -- test -e /root/who 2>/dev/null; }
ok "clone A of c1 writes /root/who" wait_until 300 clone_a
run hutch -v run --rm c1 -- sh -c 'cat /root/who 2>/dev/null || echo none; echo from-b >/root/who; cat /root/who /proc/sys/kernel/hostname'
is "$RC" 0 "clone B runs while A does"
like "$ERR" 'restored from template c1 in [0-9]+ ms' "run -v says clone B was restored from template c1"
is "$(sed -n 1,2p <<<"$OUT")" "none
from-b" "clone B does not see clone A's file, and reads back its own"
like "$(sed -n 3p <<<"$OUT")" '^c1-[0-9a-f]{8}$' "clone B's hostname is its instance name"
run hutch exec "$a" -- cat /root/who
is "$OUT" "from-a" "clone A does not see clone B's file"
run hutch stop "$a"
wait "$bg" 2>/dev/null
like "$(cat "$T/a.err")" 'restored from template c1 in [0-9]+ ms' "run -v says clone A was restored from template c1"
is "$(cd "$tdir" && sha256sum disk.qcow2 clone.qcow2 mem state)" "$before" \
	"the template's disk, overlay, memory and state are unchanged"
# like micro's, a container image VM's template is made on first use (it boots in seconds)
run hutch template rm c1
run hutch -v run --rm c1 -- cat /root/who
like "$ERR" 'made warm template c1 in' "run --rm without a template makes it first"
like "$ERR" 'restored from template c1' "and restores the clone from it"
is "$OUT" "" "that clone sees neither clone's file"
run hutch exec c1 -- sh -c 'df -k / | tail -1'
size_k=$(echo "$OUT" | awk '{print $2}')
ok "the root filesystem grew to --root-size 400M, not the disk's 512M (${size_k:-?} KiB)" \
	test "${size_k:-0}" -gt 360000 -a "${size_k:-0}" -lt 410000
run hutch stop c1
is "$RC" 0 "stop c1"
run hutch destroy c1
is "$RC" 0 "destroy c1 (its disk is kept, as for image VMs)"
ok "its warm template went with it" test ! -e "$HUTCH_HOME/cache/warm/c1"
run hutch create c1 --oci "oci:$img/layout:test"
is "$RC" 0 "create c1 again: the kept disk is used"
run hutch destroy --disk c1
is "$RC" 0 "destroy --disk c1"

# the same image through the other transports: the same disk bytes
digest_of() { sha256sum "$1"/oci/*/rootfs.img 2>/dev/null | awk '{print $1}' | sort -u; }
d1=$(digest_of "$HUTCH_HOME/cache")
(cd "$img/layout" && tar -cf "$T/oci.tar" .)
for ref in "docker-archive:$img/docker.tar" "oci-archive:$T/oci.tar"; do
	home2=$T/home-${ref%%:*}
	mkdir -p "$home2"
	run env HUTCH_HOME="$home2" "$HUTCH" create x --oci "$ref"
	is "$RC" 0 "create --oci ${ref%%:*}:FILE"
	is "$(digest_of "$home2/cache")" "$d1" "${ref%%:*}: the same disk digest as the OCI layout"
	env HUTCH_HOME="$home2" "$HUTCH" destroy x >/dev/null 2>&1
done

# faults: a clear error each, and nothing left in the cache or the VM list
before=$(entries "$cache")
for f in digest:"has digest sha256:.*but the manifest says" truncated:"truncated" \
	dotdot:"entry '../escape' escapes the root" missing:"is not in the image" norootfs:"image config has no rootfs"; do
	kind=${f%%:*}
	python3 "$_lib_dir/oci-image.py" "$T/base.tar" "$T/f-$kind" --no-kernel --fault "$kind" >/dev/null
	run hutch create "f-$kind" --oci "oci:$T/f-$kind/layout"
	is "$RC" 1 "fault $kind: create fails"
	like "$ERR" "${f#*:}" "fault $kind: the error says why"
	is "$(entries "$cache")" "$before" "fault $kind: nothing is left in the cache"
	ok "fault $kind: no VM is left" test ! -e "$HUTCH_HOME/data/vms/f-$kind"
	ok "fault $kind: no build dir is left" test -z "$(ls -A "$cache/tmp")"
done
if ! command -v podman >/dev/null && ! command -v skopeo >/dev/null; then
	run hutch create cs --oci containers-storage:busybox
	is "$RC" 1 "containers-storage without podman or skopeo fails"
	contains "$ERR" "needs podman or skopeo" "and says what it needs"
fi
run hutch create bad --oci "nope:$img"
is "$RC" 1 "an unknown transport fails"
contains "$ERR" "oci:DIR[:TAG], oci-archive:FILE" "and names the ones there are"

# image ls and prune cover the container images' disks: listed with the VMs based on them, and
# removed by prune once no VM's disk is
users_of() { python3 -c 'import json, sys
for e in json.load(sys.stdin):
    if e["digest"] == sys.argv[1]:
        print(e["kind"], ",".join(e["used_by"]) or "-")' "$manifest"; }
run hutch create c3 --oci "oci:$img/layout:test"
is "$RC" 0 "create c3 from the cached image"
run hutch --json image ls
is "$(printf '%s' "$OUT" | users_of)" "oci c2 (kept disk),c3" "image ls --json: the image's disk, used by c3 and c2's kept disk"
run hutch image prune
ok "image prune keeps a disk VMs are based on" test -f "$cache/${manifest#sha256:}/rootfs.img"
run hutch destroy --disk c3
rm -f "$HUTCH_HOME/data/vms/c2/disk.qcow2"
run hutch --json image prune
contains "$OUT" "container image $manifest" "image prune removes it once no disk is based on it"
ok "and it is gone from the cache" test ! -e "$cache/${manifest#sha256:}"
run hutch --json image ls
is "$(printf '%s' "$OUT" | users_of)" "" "image ls no longer lists it"

done_testing
