#!/usr/bin/env bash
# once
# timeout: 1500
# An image VM on the libvirt backend (qemu:///session): the Debian 12 cloud image with UEFI and a
# TPM, one boot. The domain carries the overlay disk, the seed on virtio-blk, the OVMF loader and
# per-VM NVRAM, the TPM's emulator backend and SMBIOS credentials; QEMU's user network with the
# spec's forward and the ssh forward hutch adds (libvirt 9.0 has no passt backend). start waits for
# the agent's HELLO over virDomainOpenChannel; exec, cp, port and `hutch ssh` work as on the qemu
# backend; stop and destroy leave no domain, no NVRAM and no QEMU.
. "$(dirname "$0")/lib.sh"
exec </dev/null

here=$(cd "$(dirname "$0")" && pwd)
IMG=debian-12-hutch-amd64.qcow2
SECTIONS="create start guest ssh port stop"
BOOT_TIMEOUT=900 # a bound, not an expectation
. "$here/cloud.sh"
cloud_fixture
if ! command -v virsh >/dev/null; then
	fail "libvirt is installed (virsh)" "install libvirt-clients libvirt-daemon-driver-qemu (scripts/deps.sh)"
	done_testing
	exit 1
fi
cloud_serve "$T/requests.log"
URI=qemu:///session
vsh() { timeout 60 virsh -q -c "$URI" "$@"; }
# one name per run: the session daemon is the user's, shared with other tests' homes
N=li$$
D=hutch-$N
cat >"$T/hutch.yml" <<EOF2
$N:
  backend: libvirt
  source:
    image: $base/files/$IMG
    checksum: sha256:$base/files/SHA256SUMS
  disk: 8G
  memory: 1G
  firmware: uefi
  tpm: true
  ssh: {key: generate}
  network: {forward: ['0:8080']}
EOF2

# ==== create ====
section "create $N"
run hutch create "$N" --from "$T/hutch.yml"
is "$RC" 0 "create an image VM on libvirt (uefi, tpm)"
xml=$(vsh dumpxml "$D" 2>&1)
like "$xml" "<loader [^>]*type=.pflash.[^>]*>/usr/share/OVMF/OVMF_CODE" "the domain boots OVMF"
like "$xml" "<nvram[^>]*>$HUTCH_HOME/data/vms/$N/nvram.fd</nvram>" "with the VM's own NVRAM"
like "$xml" "<tpm model=.tpm-crb.>" "a TPM"
like "$xml" "$HUTCH_HOME/data/vms/$N/disk.qcow2" "the VM's overlay disk"
like "$xml" "$HUTCH_HOME/data/vms/$N/seed.iso" "the seed"
run hutch inspect --render "$N"
printf '%s\n' "$OUT" >"$T/render.xml"
ok "the rendered domain validates against libvirt's schema" virt-xml-validate "$T/render.xml" domain

# ==== start ====
section "start $N"
HUTCH_CMD_TIMEOUT=$((BOOT_TIMEOUT + 30)) run hutch start --timeout "$BOOT_TIMEOUT" "$N"
is "$RC" 0 "start waits for the agent's HELLO through the channel"
if [ "$RC" -ne 0 ]; then
	diag "$(tail -n 40 "$HUTCH_HOME/data/vms/$N/console.log" 2>&1)"
	hutch destroy --force --disk "$N" >/dev/null 2>&1
	done_testing
	exit 1
fi
like "$(vsh domstate "$D")" "running" "libvirt runs the domain"
run hutch list
like "$OUT" "^$N +running +libvirt +tcg" "list: running on libvirt"

# ==== the guest ====
section "guest"
run hutch exec "$N" -- uname -n
is "$OUT" "$N" "exec: cloud-init set the hostname"
run hutch exec "$N" -- test -d /sys/firmware/efi
is "$RC" 0 "the guest booted through UEFI"
run hutch exec "$N" -- test -c /dev/tpm0
is "$RC" 0 "the guest has the TPM"
printf 'into the image VM\n' >"$T/in.txt"
run hutch cp "$T/in.txt" "$N:/tmp/in.txt"
is "$RC" 0 "cp into the guest"
run hutch exec "$N" -- cat /tmp/in.txt
is "$OUT" "into the image VM" "the file arrived"

# ==== ssh: the forward hutch added at start ====
section "ssh"
run hutch port "$N" ls
like "$OUT" "^127\.0\.0\.1:[0-9]+:22/tcp" "port ls: start forwarded a free host port to sshd"
ssh_ok() { hutch ssh "$N" -- id -un >"$T/ssh.out" 2>"$T/ssh.err"; }
ok "hutch ssh reaches the guest's sshd (strict host key)" wait_until 240 ssh_ok
is "$(cat "$T/ssh.out")" "$(id -un)" "as the user cloud-init made"
[ -s "$T/ssh.err" ] && diag "ssh stderr: $(cat "$T/ssh.err")"

# ==== port: the spec's forward and one at runtime reach a guest server ====
section "port"
run hutch exec "$N" -- sh -c 'mkdir -p /tmp/w && echo served >/tmp/w/i.txt && cd /tmp/w &&
	(setsid python3 -m http.server 8080 >/dev/null 2>&1 &) && sleep 1'
sport=$(hutch port "$N" ls | sed -n 's/^127\.0\.0\.1:\([0-9]*\):8080\/tcp.*/\1/p')
fetch() { curl -sf --max-time 5 "http://127.0.0.1:$1/i.txt" >"$T/got" 2>/dev/null && [ "$(cat "$T/got")" = served ]; }
ok "the spec's forward (0:8080, a free port: $sport) reaches the guest" wait_until 60 fetch "$sport"
run hutch port "$N" add 0:8080
is "$RC" 0 "port add at runtime"
rport=$(printf '%s\n' "$OUT" | sed -n 's/^127\.0\.0\.1:\([0-9]*\):8080\/tcp.*/\1/p' | grep -vx "$sport" | head -n 1)
ok "the runtime forward ($rport) reaches it too" wait_until 30 fetch "$rport"

# ==== stop, destroy ====
section "stop"
run hutch stop "$N"
is "$RC" 0 "stop"
like "$(vsh domstate "$D")" "shut off" "the domain is shut off"
run hutch destroy --disk "$N"
is "$RC" 0 "destroy --disk"
is "$(vsh list --all --name | grep -cx "$D")" 0 "the domain is undefined"
ok "its NVRAM and disk are gone" test ! -e "$HUTCH_HOME/data/vms/$N"
ok "no QEMU left" wait_until 60 no_qemu
done_testing
