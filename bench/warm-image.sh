#!/bin/bash
# bench/warm-image.sh (issue 14): `hutch run --rm IMG -- true` for a Debian 12 cloud-image VM restored
# from its warm template (a fresh overlay on the template's frozen disk), against the same VM booted
# cold by hutch: create, start (boot, cloud-init, sshd; what run --rm --cold does, with a start
# timeout that fits a loaded host), exec `true`, destroy. Also how long `template save` took. Needs
# the Debian test image from tests/fixtures/debian-image.sh (BENCH_IMAGE_DIR, default: the newest
# built one). Prints medians; asserts nothing.
#
#   BENCH_RUNS       warm runs (default 5)
#   BENCH_BOOT_RUNS  cold boots (default 1: each takes a minute or more under TCG)
#   BENCH_FIRMWARE   bios (default), uefi or uefi-secure: the VM's firmware (a UEFI template keeps
#                    its NVRAM and each clone gets a copy of it)
. "$(dirname "$0")/lib.sh"
if [ "$(id -u)" = 0 ] && [ -z "${BENCH_IMAGE_DIR:-}" ]; then
	BENCH_IMAGE_DIR=$(ls -dt /var/cache/hutch-test/debian-12-*/ 2>/dev/null | while read -r d; do
		[ -f "$d/.done" ] && echo "${d%/}" && break; done)
	export BENCH_IMAGE_DIR
fi
bench_init "$@"
TITLE="warm image VM (issue 14): \`hutch run --rm IMG -- true\` restored from a warm template vs a cold boot"
SUMMARY="\`hutch run --rm IMG -- true\`, Debian cloud image, warm"
IMG=${BENCH_IMAGE_DIR:-}
[ -n "$IMG" ] && [ -f "$IMG/debian-12-hutch-amd64.qcow2" ] ||
	bench_skip "$TITLE" "$SUMMARY" "no Debian test image (build it with tests/fixtures/debian-image.sh, as root)"
N=$BENCH_RUNS
C=${BENCH_BOOT_RUNS:-1}
FW=${BENCH_FIRMWARE:-bios}
case "$FW" in bios | uefi | uefi-secure) ;; *) bench_die "BENCH_FIRMWARE: bios, uefi or uefi-secure, not '$FW'" ;; esac
TIMEOUT=1800 # a bound for a cold boot under load, not an expectation

SRV=$BENCH_TMP/srv
mkdir -p "$SRV"
ln -s "$IMG/debian-12-hutch-amd64.qcow2" "$SRV/deb.qcow2"
(cd "$SRV" && sha256sum deb.qcow2 >SHA256SUMS)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$SRV" && exec python3 -m http.server "$PORT" --bind 127.0.0.1 >/dev/null 2>&1) &
BENCH_PIDS="$BENCH_PIDS $!"
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$PORT/SHA256SUMS" >/dev/null && break; sleep 0.1; done
cat >"$BENCH_TMP/hutch.yml" <<EOF
img:
  source:
    image: http://127.0.0.1:$PORT/deb.qcow2
    checksum: sha256:http://127.0.0.1:$PORT/SHA256SUMS
  memory: 1G
  firmware: $FW
  ssh: {key: generate}
EOF
bench_hutch_or_die create img --from "$BENCH_TMP/hutch.yml"

bench_time "$HUTCH" template save --timeout "$TIMEOUT" img >"$BENCH_TMP/save.log" 2>&1 ||
	bench_die "template save img failed: $(tail -n 20 "$BENCH_TMP/save.log")"
SAVE=$ELAPSED_MS

W=() WR=()
for ((i = 0; i < N; i++)); do
	bench_time "$HUTCH" -v run --rm img -- true >"$BENCH_TMP/warm.log" 2>&1 ||
		bench_die "hutch run --rm img -- true failed: $(tail -n 20 "$BENCH_TMP/warm.log")"
	r=$(sed -n 's/.*restored from template img in \([0-9]*\) ms.*/\1/p' "$BENCH_TMP/warm.log")
	[ -n "$r" ] || bench_die "the warm run was not restored: $(cat "$BENCH_TMP/warm.log")"
	W+=("$ELAPSED_MS")
	WR+=("$r")
done

cold_once() {
	"$HUTCH" -q create img --from "$BENCH_TMP/hutch.yml" --instance "cold$1" >/dev/null 2>&1 || return 1
	"$HUTCH" start --timeout "$TIMEOUT" "img-cold$1" >/dev/null 2>&1 &&
		"$HUTCH" exec "img-cold$1" -- true >/dev/null 2>&1
	local rc=$?
	"$HUTCH" destroy --force --disk "img-cold$1" >/dev/null 2>&1
	return $rc
}
K=()
for ((i = 0; i < C; i++)); do
	bench_time cold_once "$i" || bench_die "the cold boot of img failed"
	K+=("$ELAPSED_MS")
done
left=$(ls "$HUTCH_HOME/data/vms" | grep -vx img | wc -l)

w=$(bench_median "${W[@]}")
k=$(bench_median "${K[@]}")
bench_title "$TITLE"
echo "Debian 12 cloud image (tests/fixtures/debian-image.sh), 1 GiB, firmware $FW, TCG. $N warm runs, $C cold boot(s); wall-clock ms."
echo "\`template save img\` (boot on its own overlay, cloud-init and systemd done, save): ${SAVE} ms, not counted."
echo
bench_header "what" "median ms" "p90 ms" "ratio to cold"
bench_row "**peer**: the same VM cold: create, start (boot, cloud-init, sshd), exec \`true\`, destroy" "$k" "$(bench_p90 "${K[@]}")" "1.00"
bench_row "**hutch run --rm img -- true** (warm)" "$w" "$(bench_p90 "${W[@]}")" "**$(bench_ratio "$w" "$k")**"
bench_row "… restore: QEMU spawn → agent HELLO after migrate-incoming (-v)" "$(bench_median "${WR[@]}")" "$(bench_p90 "${WR[@]}")" "$(bench_ratio "$(bench_median "${WR[@]}")" "$k")"
echo
echo "Instances left behind: $left."
bench_summary "$SUMMARY" "$w ms" "the same VM booted cold by hutch $k ms" "$(bench_ratio "$w" "$k")" "–"
echo
bench_load_note
