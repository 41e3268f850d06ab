#!/bin/bash
# bench/cloud.sh (issues 4 and 16): in a real Debian cloud VM, `hutch exec` against `hutch ssh` (the
# system ssh with the VM's key), round trip and stdout throughput; `hutch create` from a cached 3 GiB
# image against a 100 MiB one; and (issue 16, P10) `hutch start NAME && hutch ssh NAME -- true`
# against the same image booted by hand, launch to first ssh, interleaved, with where the time goes.
# Needs the Debian test image from tests/fixtures/debian-image.sh (BENCH_IMAGE_DIR, default: the
# newest built one). Asserts nothing.
#
#   BENCH_CLOUD_SECTIONS  which parts run (default "create exec boot")
#   BENCH_CLOUD_FIRMWARE  firmware for the boot part (default "bios uefi")
#   BENCH_BOOT_RUNS       interleaved pairs per firmware (default BENCH_RUNS)
. "$(dirname "$0")/lib.sh"
if [ "$(id -u)" = 0 ] && [ -z "${BENCH_IMAGE_DIR:-}" ]; then
	BENCH_IMAGE_DIR=$(ls -dt /var/cache/hutch-test/debian-12-*/ 2>/dev/null | while read -r d; do
		[ -f "$d/.done" ] && echo "${d%/}" && break; done)
	export BENCH_IMAGE_DIR
fi
bench_init "$@"
IMG=${BENCH_IMAGE_DIR:-}
if [ -z "$IMG" ] || [ ! -f "$IMG/debian-12-hutch-amd64.qcow2" ]; then
	bench_title "cloud (issue 4): skipped"
	echo "No Debian test image: build it with tests/fixtures/debian-image.sh (as root)."
	exit 0
fi
N=$BENCH_RUNS
EXEC_N=${BENCH_EXEC_RUNS:-20}
SECTIONS=${BENCH_CLOUD_SECTIONS:-create exec boot}
section_on() { case " $SECTIONS " in *" $1 "*) return 0 ;; esac; return 1; }

# ---- serve the images over loopback ----
SRV=$BENCH_TMP/srv
mkdir -p "$SRV"
ln -s "$IMG/debian-12-hutch-amd64.qcow2" "$SRV/deb.qcow2"
if section_on create; then
	qemu-img create -q -f qcow2 "$SRV/small.qcow2" 100M
	dd if=/dev/zero of="$SRV/small.raw" bs=1M count=100 status=none
	dd if=/dev/zero of="$SRV/big.raw" bs=1M count=3072 status=none
	(cd "$SRV" && sha256sum deb.qcow2 small.raw big.raw >SHA256SUMS)
else
	(cd "$SRV" && sha256sum deb.qcow2 >SHA256SUMS)
fi
# free_port: a loopback TCP port nobody listens on now (the kernel's pick)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
(cd "$SRV" && exec python3 -m http.server "$PORT" --bind 127.0.0.1 >/dev/null 2>&1) &
BENCH_PIDS="$BENCH_PIDS $!"
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$PORT/SHA256SUMS" >/dev/null && break; sleep 0.1; done
URL=http://127.0.0.1:$PORT
SUMS=sha256:$URL/SHA256SUMS

# ---- create: 3 GiB vs 100 MiB base, both cached ----
if section_on create; then
bench_hutch_or_die image pull "$URL/small.raw" --checksum "$SUMS"
bench_hutch_or_die image pull "$URL/big.raw" --checksum "$SUMS"
CS=() CB=() QI=() KG=() VER=()
base=$(ls "$HUTCH_HOME"/cache/images/*/by-digest/sha256-* | head -n1)
for i in $(seq "$N"); do
	bench_time "$HUTCH" -q create "s$i" --image "$URL/small.raw" --checksum "$SUMS" --disk 4G
	CS+=("$ELAPSED_MS")
	bench_time "$HUTCH" -q create "b$i" --image "$URL/big.raw" --checksum "$SUMS" --disk 4G
	CB+=("$ELAPSED_MS")
	# what create cannot do without: the two programs it runs, and starting hutch at all
	bench_time qemu-img create -q -f qcow2 -F raw -b "$base" "$BENCH_TMP/o$i.qcow2" 4G
	QI+=("$ELAPSED_MS")
	bench_time ssh-keygen -q -t ed25519 -N "" -C bench -f "$BENCH_TMP/k$i"
	KG+=("$ELAPSED_MS")
	bench_time "$HUTCH" --version >/dev/null
	VER+=("$ELAPSED_MS")
done
for i in $(seq "$N"); do bench_hutch destroy --disk "s$i"; bench_hutch destroy --disk "b$i"; done
ms=$(bench_median "${CS[@]}") mb=$(bench_median "${CB[@]}")

bench_title "create (issue 4, P4): cached 3 GiB base vs cached 100 MiB base"
echo "$N runs each; \`hutch create NAME --image URL --checksum sha256:SUMS --disk 4G\` with the image"
echo "cached (its sums file resolved by the pull before): qcow2 overlay (the first of a base and size"
echo "by qemu-img, running while the rest is made; later ones copy that blank overlay), ed25519 key"
echo "(ssh-keygen), cloud-init seed ISO with the agent, spec. Wall-clock ms; medians include the first."
echo
bench_header "what" "median ms" "p90 ms"
bench_row "create, 100 MiB base" "$ms" "$(bench_p90 "${CS[@]}")"
bench_row "create, 3 GiB base" "$mb" "$(bench_p90 "${CB[@]}")"
bench_row "… the first create on each base (qemu-img makes the overlay; later ones copy it)" "${CS[0]} / ${CB[0]}" "–"
bench_row "floor: \`qemu-img create\` of the same overlay" "$(bench_median "${QI[@]}")" "$(bench_p90 "${QI[@]}")"
bench_row "floor: \`ssh-keygen -t ed25519\`" "$(bench_median "${KG[@]}")" "$(bench_p90 "${KG[@]}")"
bench_row "floor: \`hutch --version\`" "$(bench_median "${VER[@]}")" "$(bench_p90 "${VER[@]}")"
echo
echo "Ratio 3 GiB ÷ 100 MiB: **$(bench_ratio "$mb" "$ms")** (target ≤ 1.2, and under 50 ms)."
bench_summary "cloud: \`hutch create\`, cached 3 GiB vs 100 MiB base (P4)" "$mb ms" "100 MiB base $ms ms" "$(bench_ratio "$mb" "$ms")" "≤ 1.2, < 50 ms"
fi

# ---- exec vs ssh in a running cloud VM ----
if section_on exec; then
cat >"$BENCH_TMP/deb.yml" <<YML
deb:
  source:
    image: $URL/deb.qcow2
    checksum: $SUMS
  disk: 8G
  ssh: {key: generate}
YML
bench_hutch_or_die create deb --from "$BENCH_TMP/deb.yml"
bench_time "$HUTCH" start --timeout 900 deb >>"$BENCH_TMP/hutch.log" 2>&1 || bench_die "start deb failed"
BOOT=$ELAPSED_MS
"$HUTCH" ssh deb -- true >/dev/null 2>&1 # known_hosts, warm-up
"$HUTCH" exec deb -- true >/dev/null 2>&1

# guest_settle: wait (at most 120 s) until the guest's CPUs were >= 90% idle over 2 s. The guest
# stays busy for a while after boot (cloud-init's tail, timers) and after every ssh login (sshd,
# logind and the systemd user manager tearing the session down, slow under TCG); a round trip
# measured then measures that work, not the round trip.
cpu_ticks() { "$HUTCH" exec deb -- head -n1 /proc/stat | awk '{ t = 0; for (i = 2; i <= NF; i++) t += $i; print t, $5 + $6 }'; }
guest_settle() {
	local t0 i0 t1 i1 busy
	for _ in $(seq 40); do
		read -r t0 i0 < <(cpu_ticks)
		sleep 2
		read -r t1 i1 < <(cpu_ticks)
		busy=$(awk -v t=$((t1 - t0)) -v i=$((i1 - i0)) 'BEGIN { print (t > 0) ? int(100 * (t - i) / t) : 100 }')
		[ "$busy" -lt 10 ] && { SETTLE_BUSY=$busy; return 0; }
	done
	SETTLE_BUSY=$busy
}

E=() S=() EI=() SI=()
guest_settle
settle_e=$SETTLE_BUSY
bench_samples E "$EXEC_N" "$HUTCH" exec deb -- true
guest_settle
settle_s=$SETTLE_BUSY
bench_samples S "$EXEC_N" "$HUTCH" ssh deb -- true
# The same, interleaved: each exec right after an ssh, while the guest tears that session down.
for i in $(seq "$EXEC_N"); do
	bench_time "$HUTCH" exec deb -- true
	EI+=("$ELAPSED_MS")
	bench_time "$HUTCH" ssh deb -- true
	SI+=("$ELAPSED_MS")
done
e50=$(bench_median "${E[@]}") s50=$(bench_median "${S[@]}")
BYTES=$((200 * 1024 * 1024))
TE=() TS=()
for i in $(seq "${BENCH_TP_RUNS:-3}"); do
	bench_time sh -c "\"$HUTCH\" exec deb -- head -c $BYTES /dev/zero | wc -c >/dev/null"
	TE+=("$ELAPSED_MS")
	bench_time sh -c "\"$HUTCH\" ssh deb -- head -c $BYTES /dev/zero | wc -c >/dev/null"
	TS+=("$ELAPSED_MS")
done
te=$(bench_median "${TE[@]}") ts=$(bench_median "${TS[@]}")
bench_hutch stop deb

bench_title "exec vs ssh (issue 4): the same running Debian 12 cloud VM"
echo "Boot to cloud-init done: $BOOT ms. $EXEC_N runs each; ssh is OpenSSH with the VM's generated"
echo "ed25519 key over the auto-forwarded loopback port (connection set-up every time). Each block"
echo "starts on a settled guest (CPUs ≥ 90% idle over 2 s; busy before the exec block: ${settle_e}%,"
echo "before the ssh block: ${settle_s}%). The interleaved rows run each exec right after an ssh,"
echo "while the guest is still tearing that login down (sshd, logind, the user manager)."
echo
bench_header "what" "p50 ms" "p90 ms" "ratio ssh ÷ exec"
bench_row "\`hutch exec deb -- true\`" "$e50" "$(bench_p90 "${E[@]}")" "–"
bench_row "\`hutch ssh deb -- true\`" "$s50" "$(bench_p90 "${S[@]}")" "**$(bench_ratio "$s50" "$e50")**"
ei50=$(bench_median "${EI[@]}") si50=$(bench_median "${SI[@]}")
bench_row "interleaved: \`hutch exec deb -- true\` right after an ssh" "$ei50" "$(bench_p90 "${EI[@]}")" "–"
bench_row "interleaved: \`hutch ssh deb -- true\`" "$si50" "$(bench_p90 "${SI[@]}")" "$(bench_ratio "$si50" "$ei50")"
echo
echo "Target: exec ≥ 20× faster than ssh."
bench_summary "cloud: \`hutch exec deb -- true\` p50, settled guest (P3)" "$e50 ms" "\`hutch ssh deb -- true\` $s50 ms" "$(bench_ratio "$e50" "$s50") ($(bench_ratio "$s50" "$e50")× faster)" "≥ 20× faster"
bench_summary "cloud: the same, interleaved with ssh (P3)" "$ei50 ms" "ssh $si50 ms" "$(bench_ratio "$ei50" "$si50") ($(bench_ratio "$si50" "$ei50")× faster)" "–"
echo
bench_header "stdout, 200 MiB of zeros" "median ms" "MB/s" "ratio agent ÷ ssh (throughput)"
bench_row "\`hutch exec deb -- head -c 200M /dev/zero\`" "$te" "$(bench_mbps $BYTES "$te")" "**$(bench_ratio "$ts" "$te")**"
bench_row "\`hutch ssh deb -- head -c 200M /dev/zero\`" "$ts" "$(bench_mbps $BYTES "$ts")" "1.00"
echo
echo "Target: agent ≥ 1.0× ssh."
bench_summary "cloud: stdout throughput, 200 MiB (P6)" "$(bench_mbps $BYTES "$te") MB/s" "ssh $(bench_mbps $BYTES "$ts") MB/s" "$(bench_ratio "$ts" "$te") (throughput)" "≥ 1.0"
fi

if section_on boot; then
# ---- boot to first ssh (issue 16, P10): hutch against the same image booted by hand ----
#
# The peer, by hand, exactly what a user would type (cloud-localds is not installed here, so the
# NoCloud seed is made the way cloud-localds makes it: genisoimage, volume id cidata, Rock Ridge +
# Joliet, user-data and meta-data):
#
#   genisoimage -output seed.iso -volid cidata -joliet -rock user-data meta-data
#   qemu-img create -f qcow2 -F qcow2 -b debian-12-hutch-amd64.qcow2 overlay.qcow2 8G
#   qemu-system-x86_64 -M q35 -m 1024 -smp 2 -accel tcg -display none -serial file:console.log \
#     -drive file=overlay.qcow2,if=virtio,format=qcow2 -drive file=seed.iso,if=virtio,format=raw,readonly=on \
#     -netdev user,id=n,hostfwd=tcp:127.0.0.1:PORT-:22 -device virtio-net-pci,netdev=n \
#     [UEFI: -drive if=pflash,format=raw,readonly=on,file=OVMF_CODE_4M.fd -drive if=pflash,format=raw,file=vars.fd]
#   until ssh -p PORT -i key bench@127.0.0.1 true; do sleep 0.5; done
#
# user-data creates the user with the key, as hutch's does (cloud-init then makes the guest's own
# host keys: the image's cloud.cfg asks for ed25519 + ecdsa). The CPU is QEMU's default; hutch uses
# -cpu max. hutch: `hutch create` (not timed), then `hutch start NAME && hutch ssh NAME -- true`
# timed. Runs alternate which goes first. Afterwards each guest's own clocks (systemd, cloud-init's
# status.json, the agent's and sshd's start) are read, and the console log is watched from the host
# for the first byte (BIOS: GRUB's serial terminal; UEFI: OVMF's "BdsDxe: starting") and the kernel's
# first lines (kernel start = host time seen − the printk timestamp).
BOOT_N=${BENCH_BOOT_RUNS:-$N}
BASE=$IMG/debian-12-hutch-amd64.qcow2
OVMF=${HUTCH_OVMF_DIR:-/usr/share/OVMF}
ssh-keygen -q -t ed25519 -N "" -C bench -f "$BENCH_TMP/peer_key"

# The guest's own clocks, as JSON (seconds of guest uptime; run with python3 in the guest).
GUEST_TIMES='
import json, subprocess, time
up = float(open("/proc/uptime").read().split()[0]); boot = time.time() - up; o = {}
def mono(prop, unit=None):
    v = subprocess.run(["systemctl", "show", "-P", prop] + ([unit] if unit else []), capture_output=True, text=True).stdout.strip()
    return int(v) / 1e6 if v.isdigit() and int(v) > 0 else None
o["userspace"] = mono("UserspaceTimestampMonotonic")
o["agent"] = mono("ExecMainStartTimestampMonotonic", "hutch-agent.service")
o["sshd"] = mono("ActiveEnterTimestampMonotonic", "ssh.service")
try:
    v1 = json.load(open("/run/cloud-init/status.json"))["v1"]
    for st in ("init-local", "init", "modules-config", "modules-final"):
        for k, n in (("start", "start"), ("finished", "end")):
            if (v1.get(st) or {}).get(k): o[st + "_" + n] = v1[st][k] - boot
except Exception: pass
print(json.dumps(o))'

# Watches a console log from the host: seconds after LAUNCH_US of its first byte, of OVMF's
# "BdsDxe: starting", and the kernel's start (host time the first printk line was seen − its
# timestamp). Writes JSON to OUT when the kernel line is seen (or after 300 s).
WATCH_CONSOLE='
import json, os, re, sys, time
path, t0, out = sys.argv[1], int(sys.argv[2]) / 1e6, sys.argv[3]
r = {}
end = time.time() + 300
while time.time() < end:
    try: data = open(path, "rb").read()
    except OSError: data = b""
    now = time.time() - t0
    if data and "first_byte" not in r: r["first_byte"] = now
    if b"BdsDxe: starting" in data and "bds" not in r: r["bds"] = now
    m = re.findall(rb"^\[ *([0-9]+\.[0-9]+)\]", data, re.M)
    if m:
        r["kernel"] = now - max(float(x) for x in m)
        break
    time.sleep(0.02)
json.dump(r, open(out, "w"))'

# peer_run FW I: one by-hand boot; sets PEER_MS; writes $BENCH_TMP/p-FW-I/{guest,console}.json
peer_run() {
	local fw=$1 i=$2 d=$BENCH_TMP/p-$1-$2 port qpid t0 fwargs=() deadline
	mkdir -p "$d"
	printf '#cloud-config\nusers:\n  - name: bench\n    sudo: "ALL=(ALL) NOPASSWD:ALL"\n    shell: /bin/bash\n    ssh_authorized_keys: ["%s"]\n' \
		"$(cat "$BENCH_TMP/peer_key.pub")" >"$d/user-data"
	printf 'instance-id: peer-%s-%s\nlocal-hostname: peer\n' "$fw" "$i" >"$d/meta-data"
	(cd "$d" && genisoimage -quiet -output seed.iso -volid cidata -joliet -rock user-data meta-data) || bench_die "genisoimage failed"
	qemu-img create -q -f qcow2 -F qcow2 -b "$BASE" "$d/overlay.qcow2" 8G || bench_die "qemu-img failed"
	if [ "$fw" = uefi ]; then
		cp "$OVMF/OVMF_VARS_4M.fd" "$d/vars.fd"
		fwargs=(-drive "if=pflash,format=raw,readonly=on,file=$OVMF/OVMF_CODE_4M.fd" -drive "if=pflash,format=raw,file=$d/vars.fd")
	fi
	port=$(free_port)
	bench_now
	t0=$NOW_US
	qemu-system-x86_64 -M q35 -m 1024 -smp 2 -accel tcg -display none -serial "file:$d/console.log" \
		-drive "file=$d/overlay.qcow2,if=virtio,format=qcow2" -drive "file=$d/seed.iso,if=virtio,format=raw,readonly=on" \
		-netdev "user,id=n,hostfwd=tcp:127.0.0.1:$port-:22" -device virtio-net-pci,netdev=n "${fwargs[@]}" \
		>"$d/qemu.log" 2>&1 &
	qpid=$!
	python3 -c "$WATCH_CONSOLE" "$d/console.log" "$t0" "$d/console.json" &
	deadline=$((SECONDS + 900))
	until ssh -q -p "$port" -i "$BENCH_TMP/peer_key" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
		-o BatchMode=yes -o ConnectTimeout=10 bench@127.0.0.1 true </dev/null 2>/dev/null; do
		[ $SECONDS -lt $deadline ] || { kill -9 "$qpid"; bench_die "the by-hand VM gave no ssh within 900 s"; }
		sleep 0.5
	done
	bench_now
	PEER_MS=$(bench_us_to_ms $((NOW_US - t0)))
	wait_file "$d/console.json"
	ssh -q -p "$port" -i "$BENCH_TMP/peer_key" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
		-o BatchMode=yes bench@127.0.0.1 "cloud-init status --wait >/dev/null 2>&1; python3 -c '$GUEST_TIMES'" \
		>"$d/guest.json" </dev/null 2>/dev/null
	kill -9 "$qpid" 2>/dev/null
	wait "$qpid" 2>/dev/null
	rm -f "$d/overlay.qcow2"
}

wait_file() { local _k; for _k in $(seq 600); do [ -s "$1" ] && return 0; sleep 0.5; done; }

# hutch_run FW I: `hutch start && hutch ssh -- true`; sets HUTCH_MS; writes $BENCH_TMP/h-FW-I/{guest,console}.json
hutch_run() {
	local fw=$1 i=$2 name=h$1$2 d=$BENCH_TMP/h-$1-$2 t0
	mkdir -p "$d"
	printf '%s:\n  source:\n    image: %s\n    checksum: %s\n  disk: 8G\n  firmware: %s\n  ssh: {key: generate}\n' \
		"$name" "$URL/deb.qcow2" "$SUMS" "$fw" >"$d/spec.yml"
	bench_hutch_or_die create "$name" --from "$d/spec.yml"
	bench_now
	t0=$NOW_US
	python3 -c "$WATCH_CONSOLE" "$HUTCH_HOME/data/vms/$name/console.log" "$t0" "$d/console.json" &
	"$HUTCH" start --timeout 900 "$name" >"$d/start.out" 2>>"$BENCH_TMP/hutch.log" &&
		"$HUTCH" ssh "$name" -- true >>"$BENCH_TMP/hutch.log" 2>&1 || bench_die "hutch start/ssh $name failed"
	bench_now
	HUTCH_MS=$(bench_us_to_ms $((NOW_US - t0)))
	wait_file "$d/console.json"
	"$HUTCH" exec "$name" -- sh -c "cloud-init status --wait >/dev/null 2>&1; python3 -c '$GUEST_TIMES'" >"$d/guest.json" 2>/dev/null
	bench_hutch destroy --force --disk "$name"
}

# span PREFIX A B FILE: median over the runs' $BENCH_TMP/PREFIX-*/FILE.json of (B − A), of B alone
# when A is empty ("–" when absent)
span() {
	local vals
	vals=$(for f in "$BENCH_TMP/$1"-*/"$4".json; do
		python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); a=j.get(sys.argv[2]) if sys.argv[2] else 0; b=j.get(sys.argv[3]); print(b-a if a is not None and b is not None else "")' "$f" "$2" "$3" 2>/dev/null
	done | grep -v '^$')
	[ -n "$vals" ] || { echo "–"; return; }
	# shellcheck disable=SC2086
	bench_median $vals
}

# median_of PREFIX FIELD FILE: median of FIELD over the runs ("–" when absent)
median_of() { span "$1" "" "$2" "$3"; }

# ms_to_s MS: seconds with one decimal
ms_to_s() { awk -v v="$1" 'BEGIN { printf "%.1f", v / 1000 }'; }

for fw in ${BENCH_CLOUD_FIRMWARE:-bios uefi}; do
	P=() H=()
	for i in $(seq "$BOOT_N"); do
		if [ $((i % 2)) = 1 ]; then
			peer_run "$fw" "$i"
			hutch_run "$fw" "$i"
		else
			hutch_run "$fw" "$i"
			peer_run "$fw" "$i"
		fi
		P+=("$PEER_MS")
		H+=("$HUTCH_MS")
		bench_note "$fw run $i: by hand $PEER_MS ms, hutch $HUTCH_MS ms ($(head -c 300 "$BENCH_TMP/h-$fw-$i/start.out"))"
	done
	p50=$(bench_median "${P[@]}") h50=$(bench_median "${H[@]}")
	FW=$(echo "$fw" | tr a-z A-Z)
	bench_title "boot to first ssh, $FW (issue 16, P10): \`hutch start && hutch ssh -- true\` vs by hand"
	echo "$BOOT_N interleaved pairs (alternating which goes first), Debian 12 test image (cloud-init 22.4),"
	echo "2 vCPU, 1 GiB, TCG. By hand: a cloud-localds-style seed (genisoimage), a qcow2 overlay,"
	echo "\`qemu-system-x86_64 -M q35 -m 1024 -smp 2\`, virtio disk and NIC, user-net hostfwd, ssh in a loop"
	echo "every 0.5 s (the commands are at the top of this part of bench/cloud.sh). hutch: \`hutch start NAME &&"
	echo "hutch ssh NAME -- true\` after \`hutch create\` (not timed), with its defaults (waits for the agent and"
	echo "sshd; the seed has no packages or runcmd). Wall-clock seconds from launch."
	echo
	bench_header "what" "median s" "runs (s)"
	bench_row "by hand: launch → first ssh" "$(ms_to_s "$p50")" "$(printf '%s\n' "${P[@]}" | awk '{ printf "%s%.1f", (NR > 1 ? " " : ""), $1 / 1000 }')"
	bench_row "hutch: start && ssh -- true" "$(ms_to_s "$h50")" "$(printf '%s\n' "${H[@]}" | awk '{ printf "%s%.1f", (NR > 1 ? " " : ""), $1 / 1000 }')"
	echo
	echo "P10 = hutch ÷ by hand = **$(bench_ratio "$h50" "$p50")** (target ≤ 1.0)."
	bench_summary "cloud: boot to first ssh, $FW, vs by hand (P10)" "$(ms_to_s "$h50") s" "by hand $(ms_to_s "$p50") s" "$(bench_ratio "$h50" "$p50")" "≤ 1.0"
	echo
	echo "Where the time goes, $FW (medians; guest uptime in seconds, 0 = kernel start, from the guest's own"
	echo "clocks: systemd, cloud-init's status.json, the units' start times; the host rows are host clock"
	echo "from launch, the kernel's start being when its first console line showed minus its timestamp)."
	echo
	bench_header "stage" "hutch: at" "hutch: takes" "by hand: at" "by hand: takes"
	if [ "$fw" = uefi ]; then
		bench_row "firmware (host: launch → OVMF \"BdsDxe: starting\")" "–" "$(median_of "h-$fw" bds console)" "–" "$(median_of "p-$fw" bds console)"
		bench_row "GRUB + kernel load (host: → kernel start)" "–" "$(span "h-$fw" bds kernel console)" "–" "$(span "p-$fw" bds kernel console)"
	else
		bench_row "firmware (host: launch → first console byte, GRUB's serial terminal)" "–" "$(median_of "h-$fw" first_byte console)" "–" "$(median_of "p-$fw" first_byte console)"
		bench_row "GRUB + kernel load (host: → kernel start)" "–" "$(span "h-$fw" first_byte kernel console)" "–" "$(span "p-$fw" first_byte kernel console)"
	fi
	bench_row "kernel + initramfs (→ systemd in the root fs)" "0.0" "$(median_of "h-$fw" userspace guest)" "0.0" "$(median_of "p-$fw" userspace guest)"
	bench_row "systemd → cloud-init init-local" "$(median_of "h-$fw" userspace guest)" "$(span "h-$fw" userspace init-local_start guest)" "$(median_of "p-$fw" userspace guest)" "$(span "p-$fw" userspace init-local_start guest)"
	for st in init-local init modules-config modules-final; do
		bench_row "cloud-init $st" "$(median_of "h-$fw" "${st}_start" guest)" "$(span "h-$fw" "${st}_start" "${st}_end" guest)" \
			"$(median_of "p-$fw" "${st}_start" guest)" "$(span "p-$fw" "${st}_start" "${st}_end" guest)"
	done
	bench_row "hutch agent started (from bootcmd, in init)" "$(median_of "h-$fw" agent guest)" "–" "–" "–"
	bench_row "sshd active (listening)" "$(median_of "h-$fw" sshd guest)" "–" "$(median_of "p-$fw" sshd guest)" "–"
	bench_row "host: kernel start (launch → kernel)" "$(median_of "h-$fw" kernel console)" "–" "$(median_of "p-$fw" kernel console)" "–"
	bench_row "host: launch → first ssh done" "$(ms_to_s "$h50")" "–" "$(ms_to_s "$p50")" "–"
	echo
done
fi
bench_load_note
