#!/usr/bin/env bash
# Disks from container images on a real distribution (issue 15): OCI images built here from the
# root filesystem of the Debian test image (HUTCH_DEBIAN_IMAGE_DIR, turned into a tarball by
# tests/fixtures/oci-rootfs.sh and passed as HUTCH_OCI_ROOTFS by run.sh when it runs as root), in
# two layers with a whiteout between them: one without a kernel, one carrying the kernel and
# initramfs under /usr/lib/modules/RELEASE/ as a bootc image does. The plain one boots under micro's
# kernel; exec works; /usr/bin/sudo keeps the image's root ownership and setuid bit; the deleted
# file is absent; a docker-archive of it gives the same disk bytes. The kernel image's disk is made
# and its kernel and initramfs are taken out beside it, and it boots them (bootc): its own kernel,
# root=/dev/vda, systemd, the agent as a unit put in at build time.
# once
# timeout: 2400
. "$(dirname "$0")/lib.sh"
exec </dev/null

if [ -z "${HUTCH_OCI_ROOTFS:-}" ] || [ ! -r "$HUTCH_OCI_ROOTFS" ]; then
	echo "ok 1 # SKIP no Debian root filesystem tarball (run.sh makes it as root from the Debian test image)"
	echo "1..1"
	exit 0
fi
export HUTCH_CMD_TIMEOUT=1200

want=$(tar -tvf "$HUTCH_OCI_ROOTFS" ./usr/bin/sudo 2>/dev/null | awk '{print $1, $2}')
is "$want" "-rwsr-xr-x 0/0" "the Debian image has a root-owned setuid /usr/bin/sudo"

# the two OCI images of the Debian root: run.sh's cached ones (HUTCH_DEBIAN_OCI), else made here
if [ -n "${HUTCH_DEBIAN_OCI:-}" ] && [ -d "$HUTCH_DEBIAN_OCI/plain/layout" ] && [ -d "$HUTCH_DEBIAN_OCI/kernel/layout" ]; then
	ln -s "$HUTCH_DEBIAN_OCI/plain" "$T/plain"
	ln -s "$HUTCH_DEBIAN_OCI/kernel" "$T/kernel"
fi
# shellcheck disable=SC2016 # expanded by sh -c
ok "a plain (no kernel) two-layer OCI image of the Debian root" \
	sh -c '[ -d "$1/layout" ] || python3 "$2" "$3" "$1" --no-kernel' sh "$T/plain" "$_lib_dir/oci-image.py" "$HUTCH_OCI_ROOTFS"
# shellcheck disable=SC2016 # expanded by sh -c
ok "a two-layer OCI image with the kernel under /usr/lib/modules" \
	sh -c '[ -d "$1/layout" ] || python3 "$2" "$3" "$1"' sh "$T/kernel" "$_lib_dir/oci-image.py" "$HUTCH_OCI_ROOTFS"

run hutch create deb --oci "oci:$T/plain/layout:test" -d 4G -m 512M
is "$RC" 0 "create deb --oci (Debian root filesystem, 4G disk)"
run hutch start deb --wait ssh
is "$RC" 1 "start deb --wait ssh: fails"
contains "$ERR" "under the micro kernel, with no sshd" "a plain container image's VM has no sshd to wait for, and start says so"
ok "and does not start it" test ! -e "$HUTCH_HOME/data/vms/deb/console.log"
run hutch start deb
is "$RC" 0 "start deb: micro's kernel with the image's disk as root"
[ "$RC" -eq 0 ] || diag "$(tail -20 "$HUTCH_HOME/data/vms/deb/console.log" 2>/dev/null)"
run hutch exec deb -- stat -c '%a %U:%G' /usr/bin/sudo
is "$OUT" "4755 root:root" "exec: /usr/bin/sudo is root-owned and setuid, as in the image"
run hutch exec deb -- sh -c '. /etc/os-release && echo $VERSION_CODENAME'
is "$OUT" "bookworm" "exec: the image's /etc/os-release"
run hutch exec deb -- test -e /etc/hutch-oci-deleted
is "$RC" 1 "exec: the file the whiteout deleted is absent"
run hutch exec deb -u nobody -- sudo -n true
ok "exec: sudo refuses nobody (setuid root works, and so do the image's users)" test "$RC" -ne 0 -a "$RC" -ne 255
run hutch exec deb -- sh -c 'sudo -n id -u'
is "$OUT" "0" "exec: root runs sudo"
run hutch stop deb
is "$RC" 0 "stop deb"

digest_of() { sha256sum "$1"/oci/*/rootfs.img 2>/dev/null | awk '{print $1}' | sort -u; }
d1=$(digest_of "$HUTCH_HOME/cache")
mkdir -p "$T/home2"
run env HUTCH_HOME="$T/home2" "$HUTCH" create x --oci "docker-archive:$T/plain/docker.tar"
is "$RC" 0 "create --oci docker-archive:FILE of the same image"
is "$(digest_of "$T/home2/cache")" "$d1" "docker-archive: the same disk digest"
env HUTCH_HOME="$T/home2" "$HUTCH" destroy x >/dev/null 2>&1
rm -rf "$T/home2"

# bk logs in with a key of its own (not per VM), a 3G disk and the root capped at 2G
ssh-keygen -q -t ed25519 -N '' -C bk -f "$T/id"
for vm in bk bk2 bk3; do
	printf '%s:\n  source: {oci: "oci:%s"}\n  disk: 3G\n  root_size: 2G\n  ssh: {key: "%s"}\n' \
		"$vm" "$T/kernel/layout:test" "$T/id.pub"
done >"$T/bk.yml"
run hutch create bk --from "$T/bk.yml"
is "$RC" 0 "create bk from the image that carries a kernel"
HUTCH_CMD_TIMEOUT=120 run hutch template save bk
is "$RC" 1 "template save of a bootc image's VM fails (before booting anything)"
contains "$ERR" "a bootc image's VM cannot be a warm template yet" "and says why"
m=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"][7:])' "$T/kernel/layout/index.json")
ok "its kernel is taken out beside the root filesystem" test -s "$HUTCH_HOME/cache/oci/$m/vmlinuz"
ok "and its initramfs" test -s "$HUTCH_HOME/cache/oci/$m/initrd.img"
roots() { ls "$HUTCH_HOME/cache/oci/$m/" | grep -c '^root-.*\.img$'; }
is "$(roots)" 1 "one root filesystem for the image, its agent, user and key"
ino=$(stat -c %i "$HUTCH_HOME"/cache/oci/"$m"/root-*.img)
run hutch create bk2 --from "$T/bk.yml"
is "$RC" 0 "create bk2: the same image and key"
is "$(roots) $(stat -c %i "$HUTCH_HOME"/cache/oci/"$m"/root-*.img)" "1 $ino" "bk2 shares bk's root filesystem (not unpacked again)"
# what the build put in for the login user, read from the cached root filesystem itself (the guest's
# cloud-init gets the same key from the seed; this is what a bootc image without cloud-init has)
root_img=$(ls "$HUTCH_HOME"/cache/oci/"$m"/root-*.img)
dfs() { /sbin/debugfs -R "$1" "$root_img" 2>/dev/null; }
is "$(dfs 'cat /home/hutchtest/.ssh/authorized_keys')" "$(cat "$T/id.pub")" "the key is in the user's authorized_keys"
is "$(dfs 'stat /home/hutchtest/.ssh/authorized_keys' | grep -o 'Mode: *0[0-7]*' | tr -s ' ')" "Mode: 0600" "authorized_keys is 0600"
is "$(dfs 'stat /home/hutchtest/.ssh' | grep -o 'Mode: *0[0-7]*' | tr -s ' ')" "Mode: 0700" ".ssh is 0700"
uid=$(dfs 'cat /etc/passwd' | awk -F: '$1 == "hutchtest" {print $3}')
ok "the user is added to the image's /etc/passwd (uid ${uid:-none})" test "${uid:-0}" -ge 1000
is "$(dfs 'stat /home/hutchtest/.ssh/authorized_keys' | grep -o 'User: *[0-9]*' | tr -s ' ')" "User: $uid" "and owns its key"
like "$(dfs 'cat /etc/sudoers.d/hutch-hutchtest')" "^hutchtest ALL=\(ALL\) NOPASSWD:ALL" "with sudo without a password"
# another agent binary (one byte more) is another root filesystem: a cached one never keeps an old agent
cp "$(dirname "$HUTCH")/hutch-agent" "$T/agent2" && printf x >>"$T/agent2"
run env HUTCH_AGENT="$T/agent2" "$HUTCH" create bk3 --from "$T/bk.yml"
is "$RC" 0 "create bk3 with another hutch-agent"
is "$(roots)" 2 "another agent: the image's root filesystem is built again for it"
run hutch destroy --disk bk3
run hutch destroy --disk bk2
run hutch --json image prune
contains "$OUT" "sha256:$m root filesystem root-" "image prune: the root filesystem of the other agent goes"
is "$(roots) $(stat -c %i "$HUTCH_HOME"/cache/oci/"$m"/root-*.img)" "1 $ino" "and the one bk is based on stays"

# A bootc image boots its own kernel and initramfs, root on the disk, with systemd as init; the
# agent got in at build time as an enabled systemd unit (no cloud-init needed).
run hutch inspect --render bk
ok "render bk: the image's own kernel" grep -q "oci-vmlinuz" "$T/.out"
ok "render bk: root on the disk, not micro's shim" sh -c "grep -q 'root=/dev/vda rw' '$T/.out' && ! grep -q hutch.root= '$T/.out'"
ok "render bk: the agent grows the root, capped at root_size" grep -q 'hutch.growroot=/dev/vda hutch.rootsize=2147483648' "$T/.out"
ok "render bk: the image has cloud-init, so it gets the NoCloud seed" grep -q 'virtio-blk-device,drive=seed' "$T/.out"
release=$(tar -tf "$HUTCH_OCI_ROOTFS" | sed -n 's|^\./boot/vmlinuz-||p' | sort | tail -n 1)
run hutch start bk --timeout 900 --wait cloud-init
is "$RC" 0 "start bk --wait cloud-init: the image's kernel and systemd, the agent as a unit, sshd, cloud-init"
[ "$RC" -eq 0 ] || diag "$(tail -30 "$HUTCH_HOME/data/vms/bk/console.log" 2>/dev/null)"
run hutch exec bk -- uname -r
is "$OUT" "$release" "exec bk: the guest runs the image's kernel"
run hutch exec bk -- cat /proc/1/comm
is "$OUT" "systemd" "exec bk: PID 1 is the image's systemd"
run hutch exec bk -- systemctl is-enabled hutch-agent.service
is "$OUT" "enabled" "exec bk: the agent's unit is enabled"
run hutch exec bk -- stat -c '%a %U:%G' /usr/local/libexec/hutch-agent /usr/bin/sudo
is "$(echo $OUT)" "755 root:root 4755 root:root" "exec bk: the agent and sudo are root's, sudo still setuid"
run hutch exec bk -- test -e /etc/hutch-oci-deleted
is "$RC" 1 "exec bk: the whiteout-deleted file is absent"
run hutch exec bk -- sh -c 'df -k / | tail -1'
size_k=$(echo "$OUT" | awk '{print $2}')
ok "the root grew past what the image needs, to root_size 2G and not the 3G disk (${size_k:-?} KiB)" \
	test "${size_k:-0}" -gt 1900000 -a "${size_k:-0}" -le 2097152
run hutch exec bk -- stat -c '%a %U' /home/hutchtest /home/hutchtest/.ssh /home/hutchtest/.ssh/authorized_keys
is "$(echo $OUT)" "700 hutchtest 700 hutchtest 600 hutchtest" "exec bk: the login user's home, .ssh and key, with its owner and modes"
# the image has cloud-init, so bk got the NoCloud seed of image VMs as well: its hostname, and the
# host key made at create, which hutch ssh checks strictly
run hutch exec bk -- cloud-init status
contains "$OUT" "status: done" "exec bk: cloud-init ran from the seed (start waited for it)"
run hutch exec bk -- hostname
is "$OUT" "bk" "exec bk: the hostname from the seed's meta-data"
# sshd listening, and the address cloud-init's fallback network config gives the NIC in this image
run hutch exec bk -- timeout 900 sh -c 'until grep -Eq ":0016 [0-9A-F]+:0000 0A" /proc/net/tcp /proc/net/tcp6 &&
	ip -4 -o addr | grep -qv " lo "; do sleep 1; done'
is "$RC" 0 "bk: sshd listens and the NIC has an address"
run hutch ssh bk -- id -un
is "$OUT" "hutchtest" "hutch ssh bk: the key and user put in at build time"
contains "$(cat "$HUTCH_HOME/data/vms/bk/known_hosts")" "hutch-bk ssh-ed25519 " "the host key made at create is the one known (checked strictly)"
[ "$RC" -eq 0 ] || diag "$(hutch exec bk -- sh -c 'ip -br addr; systemctl --failed --no-pager; journalctl -u ssh --no-pager | tail' 2>&1)"
run hutch ssh bk -- sudo -n id -u
is "$OUT" "0" "hutch ssh bk: sudo without a password, as in image VMs"
run hutch stop bk
is "$RC" 0 "stop bk"

done_testing
