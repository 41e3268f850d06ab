#!/bin/bash
# bench/cloud.sh (issue 4): in a real Debian cloud VM, `hutch exec` against `hutch ssh` (the
# system ssh with the VM's key), round trip and stdout throughput; and `hutch create` from a
# cached 3 GiB image against a 100 MiB one. Needs the Debian test image from
# tests/fixtures/debian-image.sh (BENCH_IMAGE_DIR, default: the newest built one). Asserts nothing.
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

# ---- serve the images over loopback ----
SRV=$BENCH_TMP/srv
mkdir -p "$SRV"
ln -s "$IMG/debian-12-hutch-amd64.qcow2" "$SRV/deb.qcow2"
qemu-img create -q -f qcow2 "$SRV/small.qcow2" 100M
dd if=/dev/zero of="$SRV/small.raw" bs=1M count=100 status=none
dd if=/dev/zero of="$SRV/big.raw" bs=1M count=3072 status=none
(cd "$SRV" && sha256sum deb.qcow2 small.raw big.raw >SHA256SUMS)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$SRV" && exec python3 -m http.server "$PORT" --bind 127.0.0.1 >/dev/null 2>&1) &
BENCH_PIDS="$BENCH_PIDS $!"
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$PORT/SHA256SUMS" >/dev/null && break; sleep 0.1; done
URL=http://127.0.0.1:$PORT
SUMS=sha256:$URL/SHA256SUMS

# ---- create: 3 GiB vs 100 MiB base, both cached ----
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

# ---- exec vs ssh in a running cloud VM ----
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
bench_load_note
