#!/usr/bin/env bash
# timeout: 1800
# Cloud images against real components (issue 4): a real Debian 12 cloud image, served over
# loopback HTTP with its SHA256SUMS, booted under TCG with real cloud-init creating the user,
# installing the ssh key and the agent.
#
#   1  create from the URL with a sums-file checksum: cached and ready, the disk a qcow2 overlay; the
#      host key made at create, its known_hosts entry written before the first boot (issue 16)
#   2  start (the seed has a failing runcmd, so it waits for cloud-init and warns naming the module);
#      the guest presents the key made at create; strict `hutch ssh` works on the first try; ssh,
#      exec as root and as the cloud-init user; the agent started inside cloud-init's init stage
#   3  port forwards (from the spec and added at runtime) reaching a TCP server in the guest
#   4  cp both ways
#   5  stop through the agent (a guest poweroff); destroy keeping the disk
#   6  create the same name again (UEFI + TPM) on the kept disk: a new host key, and `hutch ssh`
#      works with no warning; start waits for agent + sshd only (no user work); /sys/firmware/efi,
#      /dev/tpm0, an EFI variable that survives a restart (NVRAM); start --wait cloud-init;
#      destroy --disk keeps the cached base
#   7  faults: checksum mismatch, a cut download that a rerun resumes with Range
#   8  start --wait none and agent on a micro VM; ssh and cloud-init refused there
#
# And, on the UEFI VM's second boot (one boot less than a file of their own), the agent going away
# and coming back (issue 17), the agent being the systemd service hutch-agent. The events come from a
# systemd timer in the guest (set through exec, firing 2 s later, writing the guest's clock to
# /run/hutch-event first); what the agent cannot do while it is away is done over `hutch ssh`, which
# does not need it:
#   L1 the agent is stopped (systemd-run --on-active=2, as a user would): an exec already running
#      ends with 255 and the message, inspect and list say gone (with why), a new exec fails fast
#      (exit 1) naming the state and the restart command; started again, exec works
#   L2 the agent is restarted with a session open: the session ends with 255 and the message, a new
#      exec works at once, and nothing of the old session shows up in a new one
#   L3 the agent gets SIGSTOP, then SIGCONT: an open session ends (255) once a ping goes unanswered,
#      inspect says unresponsive, a new exec fails fast; after SIGCONT ready, exec works
#   L4 stop with the agent gone skips the agent step (the VM's last stop)
# Each case reports, as a diag line, how long after the guest event the CLI gave its error (the
# guest's clock, corrected by its offset from the host's measured through exec; not asserted).
#
# The image comes from tests/fixtures/debian-image.sh, which needs root: run.sh builds (or reuses)
# it before dropping privileges and passes its directory as HUTCH_DEBIAN_IMAGE_DIR. Without it this
# test reports SKIP; if the build failed (HUTCH_DEBIAN_IMAGE_LOG), it fails with the log's tail.
# Boots: the BIOS VM once, then the same name as a UEFI VM twice (about 100 s each under TCG).
. "$(dirname "$0")/lib.sh"
exec </dev/null

here=$(cd "$(dirname "$0")" && pwd)
IMG=debian-12-hutch-amd64.qcow2
SECTIONS="create start forward cp stop-destroy uefi-tpm agent-stopped agent-restarted agent-sigstop
	stop-agent-gone faults wait-micro"
# Bounds, not expectations: a TCG boot here takes 75-190 s.
BOOT_TIMEOUT=600
V=$HUTCH_HOME/data/vms
me=$(id -un)

. "$here/cloud.sh"
cloud_fixture
want_digest=sha256:$(awk -v n="$IMG" '$2 == n || $2 == "*" n { print $1 }' "$image_dir/SHA256SUMS")

# ---- the HTTP server (tests/fixtures/serve.sh: http-fixture.py with its fault routes) ----
reqlog=$T/requests.log
cloud_serve "$reqlog"
port=${base##*:}
url=$base/files/$IMG
sums=sha256:$base/files/SHA256SUMS

# free_port: a loopback TCP port nobody listens on now (the kernel's pick, so it is not in TIME_WAIT).
free_port()
{
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
fwd1=$(free_port)
fwd2=$(free_port)
while [ "$fwd2" = "$fwd1" ]; do fwd2=$(free_port); done

# image_field URL PYEXPR-over-entry: a field of URL's entry in `image ls --json` ("" when none).
image_field()
{
	local js
	js=$(hutch image ls --json 2>/dev/null) || return 1
	printf '%s' "$js" | python3 -c '
import json, sys
for e in json.load(sys.stdin):
    if e["url"] == sys.argv[1]:
        print(eval(sys.argv[2]))' "$1" "$2"
}

# verified_set: "URL DIGEST" of every verified cache entry, sorted.
verified_set()
{
	hutch image ls --json | python3 -c '
import json, sys
for e in sorted(json.load(sys.stdin), key=lambda e: e["url"] or ""):
    if e["state"] == "ready":
        print(e["url"], e["digest"])'
}

# curl_body PORT PATH: the body of a GET on a loopback port; fails when nothing answers.
curl_body()
{
	curl -sf --max-time 5 "http://127.0.0.1:$1$2"
}
# wait_body SECONDS PORT PATH EXPECTED: poll until the body is EXPECTED (bounded).
wait_body()
{
	local deadline=$((SECONDS + $1)) body
	while :; do
		body=$(curl_body "$2" "$3" 2>/dev/null) && [ "$body" = "$4" ] && return 0
		[ $SECONDS -lt $deadline ] || { LAST_BODY=$body; return 1; }
		sleep 0.5
	done
}

# ---- for the agent liveness cases (L1-L4), on the VM deb ----
agent_field()
{
	hutch inspect deb --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1],""))' "$1" 2>/dev/null
}
agent_is()
{
	[ "$(agent_field agent)" = "$1" ]
}
sessions_are()
{
	[ "$(agent_field sessions)" = "$1" ]
}
now()
{
	date +%s.%N
}
# bg_exec TAG ARGS...: hutch exec deb ARGS in the background; status in $T/TAG.rc, and when it
# ended in $T/TAG.t.
bg_exec()
{
	local tag=$1
	shift
	(
		hutch exec deb "$@" >"$T/$tag.out" 2>"$T/$tag.err"
		echo $? >"$T/$tag.rc"
		now >"$T/$tag.t"
	) &
}
# guest CMD...: as root in the guest over ssh (it does not need the agent).
guest()
{
	run hutch ssh deb -- sudo -n "$@"
}
# schedule CMD: run CMD as root in the guest 2 s from now, from a systemd timer (so the exec that
# sets it up is over by then), after writing the guest's clock to /run/hutch-event. Also measures
# the guest clock's offset from the host's (OFFSET, s) through an exec.
schedule()
{
	local h0 g h1
	h0=$(now)
	g=$(hutch exec deb -- date +%s.%N)
	h1=$(now)
	OFFSET=$(python3 -c 'import sys; h0,g,h1=map(float,sys.argv[1:4]); print(g-(h0+h1)/2)' "$h0" "$g" "$h1")
	run hutch exec deb -- rm -f /run/hutch-event
	# a timer's default accuracy is a minute: ask for 100 ms
	run hutch exec deb -- systemd-run --quiet --on-active=2 --timer-property=AccuracySec=100ms \
		sh -c "date +%s.%N >/run/hutch-event; $1"
}
# event_done: the scheduled event has happened (asked over ssh: the agent may be away).
event_done()
{
	hutch ssh deb -- test -s /run/hutch-event 2>/dev/null
}
# latency WHAT TFILE: how long after the scheduled event (its guest time, in host time) the CLI
# gave its error, whose host time is in TFILE. Diag only.
latency()
{
	local t g
	t=$(cat "$2" 2>/dev/null) || return 0
	g=$(hutch ssh deb -- cat /run/hutch-event 2>/dev/null) || return 0
	diag "$(python3 -c 'import sys; g,o,e=map(float,sys.argv[2:5]); print("latency, %s: the CLI error came %.2f s after the guest event" % (sys.argv[1], e-(g-o)))' "$1" "$g" "$OFFSET" "$t")"
}

# ==== 1: create from the URL with the sums-file checksum ====
section "create from $url"
cat >"$T/deb.yml" <<EOF
deb:
  source:
    image: $url
    checksum: $sums
  disk: 8G
  ssh: {key: generate}
  network: {mode: user, forward: ["$fwd1:8085"]}
  cloud_init: {runcmd: ["touch /run/hutch-runcmd-ran", "false"]}
EOF
run hutch create deb --from "$T/deb.yml"
is "$RC" 0 "create deb --from a spec with the image URL and a sums-file checksum"
like "$OUT" '^created deb' "create prints 'created deb'"

is "$(image_field "$url" 'e["state"]')" ready "image ls: the URL is cached and ready"
is "$(image_field "$url" 'e["digest"]')" "$want_digest" "image ls: verified against the digest in SHA256SUMS"
like "$(hutch image ls)" "ready +deb +$url\$" "image ls (text) shows it ready and used by deb"
cached=$(image_field "$url" 'e["path"]')

run qemu-img info --output=json "$V/deb/disk.qcow2"
is "$RC" 0 "qemu-img info reads the VM's disk"
info=$OUT
backing=$(json_get "$info" 'j.get("backing-filename","")')
is "$(json_get "$info" 'j["format"]')" qcow2 "disk.qcow2 is qcow2"
is "$(json_get "$info" 'j.get("backing-filename-format","")')" qcow2 "its backing file's format is qcow2"
like "$backing" "^$HUTCH_HOME/cache/images/[0-9a-f]{64}/" "its backing file is an absolute path into the image cache"
ok "the backing file is the cached, verified image (same inode)" test -n "$cached" -a "$backing" -ef "$cached"
is "$(json_get "$info" 'j["virtual-size"]')" 8589934592 "virtual size is 8G (disk: 8G)"
ok "the overlay is small: the base was not copied" test "$(stat -c %s "$V/deb/disk.qcow2")" -lt 16777216

# key_blob: the base64 blob of the first ed25519 key on stdin (a .pub line or a known_hosts line)
key_blob()
{
	awk '$1 == "ssh-ed25519" { print $2; exit } $2 == "ssh-ed25519" { print $3; exit }'
}
hostpub=$V/deb/ssh_host_ed25519_key.pub
blob1=$(key_blob <"$hostpub")
like "$blob1" '^AAAAC3NzaC1lZDI1NTE5' "create made an ed25519 host key for the VM"
is "$(cat "$V/deb/known_hosts" 2>/dev/null)" "hutch-deb ssh-ed25519 $blob1" \
	"known_hosts holds it under the VM's alias before the first boot"
is "$(stat -c %a "$V/deb/ssh_host_ed25519_key")" 600 "the private host key is 0600"
is "$(stat -c %a "$V/deb/seed.iso")" 600 "the seed that carries it is 0600"
ok "the VM dir is not world-readable" test "$(($(stat -c %#a "$V/deb") & 07))" -eq 0

# ==== 2: start; ssh and exec; cloud-init created the user with the key ====
section "start deb (BIOS)"
kh_before=$(sha256sum <"$V/deb/known_hosts")
HUTCH_CMD_TIMEOUT=$((BOOT_TIMEOUT + 30)) run hutch start --timeout "$BOOT_TIMEOUT" deb
is "$RC" 0 "start --timeout $BOOT_TIMEOUT deb exits 0"
like "$OUT" '^started deb' "start prints 'started deb'"
like "$OUT" ': agent [0-9.]+ s, sshd [0-9.]+ s, cloud-init [0-9.]+ s \(1 module failed\)$' \
	"start says it waited for the agent, sshd and cloud-init (the seed has a runcmd)"
like "$ERR" "warning: cloud-init in 'deb' failed in module scripts-user: Runparts: 1 failures \(runcmd\)" \
	"the failing runcmd is a warning naming the module"
diag "$OUT"
section "deb started"
run hutch exec deb -- test -e /run/hutch-runcmd-ran
is "$RC" 0 "start returned after the runcmd had run (cloud-init's final stage)"

# ---- the host key made at create; strict ssh from the first connection ----
run hutch exec deb -- cat /etc/ssh/ssh_host_ed25519_key.pub
is "$(printf '%s\n' "$OUT" | key_blob)" "$blob1" "the guest's sshd has the host key made at create"
run hutch exec deb -- sh -c 'ls /etc/ssh/ssh_host_*_key'
is "$OUT" /etc/ssh/ssh_host_ed25519_key "the guest generated no host keys of its own"
sshport=$(hutch port deb ls | sed -n 's/^127\.0\.0\.1:\([0-9]*\):22\/tcp$/\1/p')
run ssh-keyscan -T 20 -t ed25519 -p "$sshport" 127.0.0.1
is "$(printf '%s\n' "$OUT" | key_blob)" "$blob1" "sshd presents that key on the forwarded port ($sshport)"
run hutch ssh deb -- true
is "$RC" 0 "hutch ssh deb -- true works on the first try"
is "$ERR" "" "... with nothing on stderr"
is "$(sha256sum <"$V/deb/known_hosts")" "$kh_before" "known_hosts is unchanged: nothing was trusted on first use"
cp "$V/deb/known_hosts" "$T/known_hosts.keep"
: >"$V/deb/known_hosts"
run hutch ssh deb -- true
is "$RC" 255 "with the entry removed, hutch ssh refuses (strict checking, not accept-new)"
like "$ERR" 'Host key verification failed|No ED25519 host key is known' "... saying the host key is not known"
cp "$T/known_hosts.keep" "$V/deb/known_hosts"

# ---- cloud-init's state in list and inspect ----
run hutch list
like "$OUT" '^deb +running +qemu +tcg .* error$' "list shows cloud-init's state: error"
run hutch list --json
is "$(json_get "$OUT" '[v["cloud_init"] for v in j if v["name"]=="deb"][0]')" error "list --json: cloud_init error"
like "$(json_get "$OUT" '[v["cloud_init_failures"][0] for v in j if v["name"]=="deb"][0]')" '^scripts-user: ' \
	"list --json names the failed module"
run hutch inspect --json deb
is "$(json_get "$OUT" 'j["cloud_init"]["state"]')" error "inspect --json: cloud_init.state error"
is "$(json_get "$OUT" 'j["host_key_check"]')" strict "inspect --json: the host key is checked strictly"

# ---- the agent came up inside cloud-init's init stage, not after it (the guest's own clock) ----
# shellcheck disable=SC2016 # expanded in the guest
run hutch exec deb -- sh -c 'date -d "$(systemctl show -P ExecMainStartTimestamp hutch-agent.service)" +%s.%N'
agent_at=$OUT
run hutch exec deb -- python3 -c 'import json; print(json.load(open("/run/cloud-init/status.json"))["v1"]["init"]["finished"])'
init_done=$OUT
diag "guest clock: the agent started at $agent_at, cloud-init's init stage finished at $init_done"
ok "the agent started before cloud-init's init stage finished" \
	python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)' "$agent_at" "$init_done"

run hutch ssh deb -- cat /etc/os-release
is "$RC" 0 "hutch ssh deb -- cat /etc/os-release exits 0"
like "$OUT" '^VERSION_CODENAME=bookworm$' "the guest is Debian 12 (bookworm)"
run hutch ssh deb -- id -un
is "$OUT" "$me" "ssh logs in as the host user ($me), created by cloud-init"

run hutch exec deb -- id -un
is "$OUT" root "hutch exec deb -- id -un: root"
run hutch exec deb -u "$me" -- id -un
is "$OUT" "$me" "exec deb -u $me (option after NAME) runs as $me"
run hutch exec -u "$me" deb -- id -un
is "$OUT" "$me" "exec -u $me deb (option before NAME) runs as $me"

run hutch exec deb -u "$me" -- sh -c 'cat ~/.ssh/authorized_keys'
contains "$OUT" "$(cut -d' ' -f1-2 "$V/deb/id_ed25519.pub")" "cloud-init installed the VM's generated key for $me"
run hutch exec deb -u "$me" -- sudo -n true
is "$RC" 0 "$me has passwordless sudo"

run hutch exec deb -- cloud-init status
like "$OUT" '^status: error$' "cloud-init status: error (the runcmd failed)"
run hutch exec deb -- systemctl is-active hutch-agent.service
is "$OUT" active "the agent runs as a systemd service installed from the seed"

# ==== 3: forwards reaching a TCP server in the guest ====
section "forwards"
run hutch exec deb -- hostname
guest_host=$OUT
is "$guest_host" deb "the guest's hostname is the VM name"
run hutch exec deb -- sh -c 'command -v python3'
is "$RC" 0 "the guest has python3 (for a TCP server)"
run hutch exec deb -- sh -c 'setsid python3 -m http.server 8085 --directory /etc </dev/null >/dev/null 2>&1 &'
is "$RC" 0 "a TCP server starts in the guest on port 8085"

run hutch port deb ls
like "$OUT" "^127\.0\.0\.1:$fwd1:8085/tcp$" "port ls shows the spec's forward $fwd1:8085"
if wait_body 60 "$fwd1" /hostname "$guest_host"; then
	pass "the spec's forward $fwd1 -> 8085 reaches the guest server (GET /hostname = $guest_host)"
else
	fail "the spec's forward $fwd1 -> 8085 reaches the guest server" "last body: '${LAST_BODY:-}'"
fi

run hutch port deb add "$fwd2:8085"
is "$RC" 0 "port deb add $fwd2:8085 exits 0"
run hutch port deb ls
like "$OUT" "^127\.0\.0\.1:$fwd2:8085/tcp$" "port ls shows the runtime forward"
if wait_body 30 "$fwd2" /hostname "$guest_host"; then
	pass "the runtime forward $fwd2 -> 8085 reaches the guest server"
else
	fail "the runtime forward $fwd2 -> 8085 reaches the guest server" "last body: '${LAST_BODY:-}'"
fi
run hutch port deb rm "$fwd2:8085"
is "$RC" 0 "port deb rm $fwd2:8085 exits 0"
run hutch port deb ls
unlike "$OUT" ":$fwd2:8085/" "port ls no longer shows it"
ok "nothing answers on $fwd2 after rm" wait_until 10 eval "! curl -s --max-time 2 -o /dev/null http://127.0.0.1:$fwd2/hostname"
is "$(curl_body "$fwd1" /hostname)" "$guest_host" "the spec's forward still works"

# ==== 4: cp both ways ====
section "cp"
head -c 300000 /dev/urandom >"$T/blob"
run hutch cp "$T/blob" deb:/tmp/blob
is "$RC" 0 "cp a file into the VM"
run hutch exec deb -- sha256sum /tmp/blob
is "${OUT%% *}" "$(sha256sum <"$T/blob" | cut -d' ' -f1)" "the copy in the guest is identical"
run hutch cp deb:/usr/lib/os-release "$T/os-release"
is "$RC" 0 "cp a file out of the VM"
like "$(cat "$T/os-release" 2>/dev/null)" '^VERSION_CODENAME=bookworm$' "the copied-out file has the guest's content"
mkdir -p "$T/tree/sub" && echo one >"$T/tree/a" && echo two >"$T/tree/sub/b"
run hutch cp -r "$T/tree" deb:/tmp/tree
is "$RC" 0 "cp -r a directory into the VM"
run hutch cp -r deb:/tmp/tree "$T/tree-back"
is "$RC" 0 "cp -r it back out"
ok "the round-tripped tree is identical" diff -r "$T/tree" "$T/tree-back"

# ==== 5: stop through the agent, destroy --disk ====
section "stop deb"
run hutch stop deb
is "$RC" 0 "stop deb exits 0"
like "$OUT" '^stopped deb \(agent, ' "stop used the agent"
ok "QEMU is gone after stop" wait_until 30 no_qemu
# The agent asks systemd to power off. QEMU runs with -no-reboot, so a reboot would end it as
# well: look at how the guest's kernel went down.
run hutch logs deb
how=$(printf '%s\n' "$OUT" | grep -aE 'systemd-shutdown\[1\]: (Powering off|Rebooting|Halting)|reboot: ' | tail -n 3)
like "$how" 'reboot: Power down' "the guest powered off (console: 'reboot: Power down'), not rebooted"
run hutch destroy deb
is "$RC" 0 "destroy deb (keeping its disk) exits 0"
ok "the disk is kept" test -f "$V/deb/disk.qcow2"
ok "the host key and known_hosts went with the VM" test ! -e "$V/deb/ssh_host_ed25519_key" -a ! -e "$V/deb/known_hosts"

# ==== 6: the same name again, UEFI + TPM on the kept disk; NVRAM kept across a restart ====
section "create deb again (UEFI, TPM) on the kept disk"
pristine=${HUTCH_OVMF_DIR:-/usr/share/OVMF}/OVMF_VARS_4M.fd
cat >"$T/efi.yml" <<EOF
deb:
  source:
    image: $url
    checksum: $sums
  disk: 8G
  firmware: uefi
  tpm: true
  ssh: {key: generate}
EOF
run hutch create deb --from "$T/efi.yml"
is "$RC" 0 "create deb again (firmware: uefi, tpm: true) exits 0"
nvram=$V/deb/nvram.fd
ok "nvram.fd is a pristine copy of $(basename "$pristine")" cmp -s "$nvram" "$pristine"
blob2=$(key_blob <"$hostpub")
like "$blob2" '^AAAAC3NzaC1lZDI1NTE5' "the new create made a host key"
ok "... a new one (the kept disk still holds the old key)" test "$blob2" != "$blob1"
is "$(cat "$V/deb/known_hosts" 2>/dev/null)" "hutch-deb ssh-ed25519 $blob2" "known_hosts holds the new key"

HUTCH_CMD_TIMEOUT=$((BOOT_TIMEOUT + 30)) run hutch start --timeout "$BOOT_TIMEOUT" deb
is "$RC" 0 "start deb exits 0 (first UEFI boot)"
like "$OUT" ': agent [0-9.]+ s, sshd [0-9.]+ s$' "with no user work in the seed, start waited for the agent and sshd only"
diag "$OUT"
section "deb (UEFI) started"
run hutch exec deb -- cat /proc/net/tcp /proc/net/tcp6
like "$OUT" '^ *[0-9]+: [0-9A-F]+:0016 [0-9A-F]+:0000 0A ' "sshd was listening when start returned"
run hutch ssh deb -- true
is "$RC" 0 "hutch ssh works on the re-created VM at once"
is "$ERR" "" "... with no warning (no 'host key changed')"
run hutch exec deb -- cat /etc/ssh/ssh_host_ed25519_key.pub
is "$(printf '%s\n' "$OUT" | key_blob)" "$blob2" "the guest replaced the kept disk's host key with the new one"
run hutch exec deb -- test -d /sys/firmware/efi
is "$RC" 0 "the guest booted through UEFI (/sys/firmware/efi)"
run hutch exec deb -- test -c /dev/tpm0
is "$RC" 0 "the TPM is visible in the guest (/dev/tpm0)"
run hutch exec deb -- sh -c 'ls /sys/class/tpm/tpm0/tpm_version_major 2>/dev/null && cat /sys/class/tpm/tpm0/tpm_version_major'
like "$OUT" '^2$' "it is a TPM 2.0"

# A non-volatile EFI variable written now must still be there after a restart.
efivar=/sys/firmware/efi/efivars/HutchTest-4a0b2d52-8e1f-4c1b-9f61-6875746368aa
token=hutch-nvram-$$-$RANDOM
run hutch exec deb -- python3 -c '
import sys
# efivarfs: 4 bytes of attributes (NON_VOLATILE|BOOTSERVICE|RUNTIME), then the data, in one write
open(sys.argv[1], "wb").write(b"\x07\x00\x00\x00" + sys.argv[2].encode())' "$efivar" "$token"
is "$RC" 0 "write a non-volatile EFI variable in the guest"
readvar=(python3 -c 'import sys; sys.stdout.write(open(sys.argv[1], "rb").read()[4:].decode())' "$efivar")
run hutch exec deb -- "${readvar[@]}"
is "$OUT" "$token" "the guest reads the variable back"

run hutch stop deb
is "$RC" 0 "stop deb exits 0"
like "$OUT" '^stopped deb \(agent, ' "stop deb used the agent"
ok "QEMU is gone after stop" wait_until 30 no_qemu
ok "nvram.fd changed from the pristine copy during the first boot" eval "! cmp -s '$nvram' '$pristine'"
nv1=$(sha256sum <"$nvram" | cut -d' ' -f1)

HUTCH_CMD_TIMEOUT=$((BOOT_TIMEOUT + 30)) run hutch start --wait cloud-init --timeout "$BOOT_TIMEOUT" deb
is "$RC" 0 "start --wait cloud-init deb exits 0 (second boot)"
like "$OUT" ': agent [0-9.]+ s, sshd [0-9.]+ s, cloud-init [0-9.]+ s$' "start --wait cloud-init waited for cloud-init too"
diag "$OUT"
section "deb (UEFI) started again"
run hutch exec deb -- test -s /run/cloud-init/result.json
is "$RC" 0 "cloud-init's final stage had ended when start returned"
run hutch exec deb -- "${readvar[@]}"
is "$OUT" "$token" "the EFI variable survived the restart (NVRAM persists)"
run hutch exec deb -- test -d /sys/firmware/efi
is "$RC" 0 "the second boot is UEFI too"
run hutch exec deb -- cloud-init status
like "$OUT" '^status: done$' "cloud-init is done on the second boot"
run hutch ssh deb -- true
is "$RC$ERR" 0 "hutch ssh still works after the restart, quietly"

# ==== L1-L4: the agent goes away and comes back ====
section "L1: the agent is stopped"
is "$(agent_field agent)" ready "L1: the agent is ready"
bg_exec s1 -- sh -c 'sleep 60; echo done'
ok "L1: a session is open" wait_until 60 sessions_are 1
schedule "systemctl stop hutch-agent"
is "$RC" 0 "L1: systemctl stop hutch-agent, in 2 s (systemd-run, through exec)"
ok "L1: the open exec returns" wait_until 60 test -s "$T/s1.rc"
is "$(cat "$T/s1.rc" 2>/dev/null)" 255 "L1: the exec that was running exits 255"
like "$(cat "$T/s1.err")" "the guest agent in 'deb' went away while 'sh' was running; its result is unknown" \
	"L1: its message says the agent went away and the result is unknown"
latency "stopped agent" "$T/s1.t"
ok "L1: inspect says gone" wait_until 30 agent_is gone
is "$(agent_field agent_why)" "the guest closed the agent port" "L1: inspect --json says why"
run hutch inspect deb
like "$OUT" '^agent: +gone for [0-9]+s \(the guest closed the agent port\)$' "L1: inspect says since when and why"
run hutch list
like "$OUT" '^deb +running +[a-z]+ .* gone ' "L1: list shows the agent gone"
t=$(now)
run hutch exec deb -- true
is "$RC" 1 "L1: exec on a gone agent exits 1 (at once, not a hang)"
like "$ERR" "the guest agent in 'deb' is gone \(for [0-9]+ s: the guest closed the agent port\); restart it with 'hutch ssh deb -- sudo systemctl restart hutch-agent'" \
	"L1: the error names the state and the command that restarts the agent"
diag "L1: exec on the gone agent failed in $(python3 -c 'import sys,time; print("%.2f" % (time.time()-float(sys.argv[1])))' "$t") s"
guest systemctl start hutch-agent
is "$RC" 0 "L1: systemctl start hutch-agent"
ok "L1: ready again" wait_until 60 agent_is ready
run hutch exec deb -- echo back
is "$RC:$OUT" "0:back" "L1: exec works again"

# ---- L2: the agent is restarted with a session open ----
section "L2: the agent is restarted"
bg_exec s2 -- sh -c 'sleep 20; echo done'
ok "L2: a session is open" wait_until 60 sessions_are 1
t_open=$SECONDS # the program started before this: it ends by t_open + 20 s
schedule "systemctl restart hutch-agent"
is "$RC" 0 "L2: systemctl restart hutch-agent, in 2 s"
ok "L2: the open exec returns" wait_until 60 test -s "$T/s2.rc"
is "$(cat "$T/s2.rc" 2>/dev/null)" 255 "L2: the session whose agent restarted exits 255"
like "$(cat "$T/s2.err")" "the guest agent in 'deb' went away while 'sh' was running; its result is unknown" \
	"L2: ... with the message"
unlike "$(cat "$T/s2.out")" 'done' "L2: its program did not finish (systemd killed it with the agent)"
latency "restarted agent" "$T/s2.t"
ok "L2: the new agent is ready" wait_until 60 agent_is ready
run hutch exec deb -- echo fresh
is "$RC:$OUT" "0:fresh" "L2: a new exec works"
is "$(agent_field agent_why)" "a new agent said HELLO" "L2: inspect: a new agent said HELLO"
# past the old program's end (2 s after it, counted from when its session was seen open): none of it
# may reach a new session
left=$((t_open + 22 - SECONDS))
[ "$left" -le 0 ] || sleep "$left"
run hutch exec deb -- cat /dev/null
is "$RC:$OUT" "0:" "L2: a new session gets nothing of the old one"

# ---- L3: SIGSTOP, then SIGCONT ----
section "L3: the agent gets SIGSTOP"
bg_exec s3 -- sh -c 'sleep 120; echo done'
ok "L3: a session is open" wait_until 60 sessions_are 1
schedule "systemctl kill --kill-whom=main -s SIGSTOP hutch-agent"
is "$RC" 0 "L3: SIGSTOP to the agent in 2 s (systemctl kill --kill-whom=main)"
ok "L3: the open exec returns (a ping went unanswered)" wait_until 90 test -s "$T/s3.rc"
is "$(cat "$T/s3.rc" 2>/dev/null)" 255 "L3: the session on the stopped agent exits 255"
like "$(cat "$T/s3.err")" "the guest agent in 'deb' stopped answering \(no answer to a ping within [0-9]+ s\) while 'sh' was running; its result is unknown" \
	"L3: ... with the message"
latency "SIGSTOPped agent, session open" "$T/s3.t"
is "$(agent_field agent)" unresponsive "L3: inspect says unresponsive"
t=$(now)
run hutch exec deb -- true
is "$RC" 1 "L3: exec on the unresponsive agent exits 1"
like "$ERR" "the guest agent in 'deb' is unresponsive .*restart it with 'hutch ssh deb -- sudo systemctl restart hutch-agent'" \
	"L3: ... naming the state and what to try"
diag "L3: exec on the unresponsive agent failed in $(python3 -c 'import sys,time; print("%.2f" % (time.time()-float(sys.argv[1])))' "$t") s"
guest systemctl kill --kill-whom=main -s SIGCONT hutch-agent
is "$RC" 0 "L3: SIGCONT to the agent"
ok "L3: ready again" wait_until 60 agent_is ready
run hutch exec deb -- echo cont
is "$RC:$OUT" "0:cont" "L3: exec works after SIGCONT"
ok "L3: the hung-up program's session is gone" wait_until 60 sessions_are 0

# A quiet, stopped agent with no session open: the first exec is bounded by a ping.
schedule "systemctl kill --kill-whom=main -s SIGSTOP hutch-agent"
ok "L3b: SIGSTOP to the agent, with no session open" wait_until 60 event_done
sleep 6 # quiet past the ping threshold (5 s)
t=$(now)
bg_exec s4 -- true
ok "L3b: exec on a stopped, quiet agent returns (bounded by a ping)" wait_until 60 test -s "$T/s4.rc"
is "$(cat "$T/s4.rc" 2>/dev/null)" 1 "L3b: ... with exit 1"
like "$(cat "$T/s4.err")" "is unresponsive \(for [0-9]+ s: no answer to a ping" "L3b: ... naming the state"
diag "latency, SIGSTOPped quiet agent: a new exec failed $(python3 -c 'import sys; print("%.2f" % (float(sys.argv[2])-float(sys.argv[1])))' "$t" "$(cat "$T/s4.t")") s after it began"
guest systemctl kill --kill-whom=main -s SIGCONT hutch-agent
ok "L3b: ready again" wait_until 60 agent_is ready

# ---- L4: stop with the agent gone (the last stop of deb) ----
section "L4: stop with the agent gone"
guest systemctl stop hutch-agent
ok "L4: gone" wait_until 30 agent_is gone
run hutch stop deb --json
is "$RC" 0 "stop deb exits 0 (after the second boot; L4: the agent gone)"
unlike "$(json_get "$OUT" 'j["method"]')" '^agent$' "L4: stop skipped the agent step (ended on $(json_get "$OUT" 'j["method"]'))"
diag "L4: stop ended on $(json_get "$OUT" 'j["method"]') after $(json_get "$OUT" 'j["ms"]') ms"
run hutch list -a
like "$OUT" '^deb +stopped' "L4: list -a: deb is stopped"
ok "QEMU is gone after stop" wait_until 30 no_qemu
ok "nvram.fd still differs from the pristine copy (kept, not reset)" eval "! cmp -s '$nvram' '$pristine'"
nv2=$(sha256sum <"$nvram" | cut -d' ' -f1)
diag "nvram.fd sha256: pristine $(sha256sum <"$pristine" | cut -c1-16), after boot 1 ${nv1:0:16}, after boot 2 ${nv2:0:16}"
run hutch destroy --disk deb
is "$RC" 0 "destroy --disk deb exits 0"
ok "the VM's directory is gone" test ! -e "$V/deb"
ok "the cached base remains" test -f "$backing" -a -f "$cached"
is "$(image_field "$url" 'e["state"]+" "+",".join(e["used_by"])')" "ready " "image ls: still ready, used by nobody"

# ==== 7: faults ====
section "checksum mismatch"
zeros=$(printf '%064d' 0)
before=$(verified_set)
run hutch create bad --image "$url" --checksum "sha256:$zeros"
is "$RC" 1 "create with a wrong sha256 for the cached URL exits 1"
like "$ERR" 'checksum mismatch' "it says checksum mismatch"
ok "nothing under data/vms/bad" test ! -e "$V/bad"
is "$(verified_set)" "$before" "the verified cache entries are unchanged"
is "$(image_field "$url" 'e["digest"]')" "$want_digest" "the cached image keeps its verified digest"

badurl="$url?fresh=1"
run hutch create bad --image "$badurl" --checksum "sha256:$zeros"
is "$RC" 1 "create with a wrong sha256 for an uncached URL exits 1"
like "$ERR" 'checksum mismatch' "it says checksum mismatch"
ok "nothing under data/vms/bad" test ! -e "$V/bad"
is "$(verified_set)" "$before" "no verified entry was added"
is "$(image_field "$badurl" 'str(e["partial_bytes"])+" "+str(e["path"])')" "0 None" \
	"the mismatched download left neither an image nor an image.part"

section "cut download"
cut_at=67108864
cuturl=$base/cut/$cut_at/$IMG
run hutch image pull "$cuturl" --checksum "$sums"
is "$RC" 1 "image pull of a download cut at 64 MiB exits 1"
like "$ERR" "connection lost|transfer closed" "the error says the connection was lost"
like "$ERR" "kept to resume" "the error says the partial download is kept"
is "$(image_field "$cuturl" 'e["state"]+" "+str(e["partial_bytes"])')" "partial $cut_at" "image ls: partial, $cut_at bytes kept"
cutdir=
for d in "$HUTCH_HOME"/cache/images/*/; do
	[ "$(cat "$d/url" 2>/dev/null)" != "$cuturl" ] || cutdir=$d
done
ok "image.part is kept in the cache dir" test -f "${cutdir}image.part"

run hutch image pull "$cuturl" --checksum "$sums"
is "$RC" 0 "the rerun (no cut this time) exits 0"
ok "it prints the verified image's path" test -f "$OUT"
contains "$(cat "$reqlog")" "GET /cut/$cut_at/$IMG bytes=$cut_at-" "the rerun resumed with Range: bytes=$cut_at-"
is "$(grep -c "^GET /cut/$cut_at/$IMG " "$reqlog")" 2 "two requests in all: the cut one and the resume"
is "$(image_field "$cuturl" 'e["state"]+" "+e["digest"]')" "ready $want_digest" "image ls: ready, with the right digest"
ok "no image.part left" test ! -e "${cutdir}image.part"

# ==== 8: start --wait on a micro VM ====
section "start --wait none|agent (micro)"
run hutch create m --template micro
is "$RC" 0 "create m --template micro"
run hutch start --wait ssh m
is "$RC" 1 "start --wait ssh on a micro VM exits 1"
like "$ERR" 'a micro VM has no sshd or cloud-init' "... saying why"
run hutch start --wait none m
is "$RC" 0 "start --wait none m exits 0"
like "$OUT" '^started m \(tcg, not waiting for the guest\)$' "start --wait none says it did not wait"
run hutch list
like "$OUT" '^m +running ' "the VM runs when start --wait none returns"
ok "the agent answers later on its own" wait_until 120 hutch exec m -- true
run hutch stop m
is "$RC" 0 "stop m"
run hutch start --wait agent m
is "$RC" 0 "start --wait agent m exits 0"
like "$OUT" ': agent [0-9.]+ s$' "start --wait agent says it waited for the agent only"
run hutch exec m -- true
is "$RC" 0 "exec works as soon as start --wait agent returns"
run hutch stop m
run hutch destroy m
is "$RC" 0 "destroy m"

done_testing
