#!/bin/bash
# bench/desktop.sh: what the desktop costs a micro VM. Boot (`hutch start` to the agent's HELLO)
# with display: {video: virtio, remote: vnc} and with sound against the same micro VM without
# either (the peer), `hutch screenshot` against a bare QMP screendump of the same screen, and
# `hutch clip copy` against `hutch exec -- cat /run/hutch/clipboard` (the exec session it rides on).
# Prints medians and ratios; asserts nothing.
. "$(dirname "$0")/lib.sh"
bench_init "$@"

N=$BENCH_RUNS
cat >"$BENCH_TMP/vms.yml" <<'EOF2'
plain:
  source: {template: micro}
  memory: 256M
disp:
  source: {template: micro}
  memory: 256M
  display: {video: virtio, remote: vnc}
snd:
  source: {template: micro}
  memory: 256M
  sound: true
EOF2
export HUTCH_TEST_AUDIO_WAV=$BENCH_TMP/out.wav # no sound server needed
for v in plain disp snd; do
	"$HUTCH" create "$v" --from "$BENCH_TMP/vms.yml" >>"$BENCH_TMP/hutch.log" 2>&1 || bench_die "create $v failed"
done
"$HUTCH" inspect --render plain >/dev/null 2>&1 # build the template outside the timings
PLAIN=() DISP=() SND=()
for ((i = 0; i < N; i++)); do
	for v in plain disp snd; do
		bench_time "$HUTCH" start "$v" >>"$BENCH_TMP/hutch.log" 2>&1 || bench_die "start $v failed"
		case $v in plain) PLAIN+=("$ELAPSED_MS") ;; disp) DISP+=("$ELAPSED_MS") ;; snd) SND+=("$ELAPSED_MS") ;; esac
		[ "$v" = disp ] && [ "$i" = $((N - 1)) ] && break # keep the last display VM running
		"$HUTCH" stop "$v" >>"$BENCH_TMP/hutch.log" 2>&1
	done
done
SHOT=() RAW=()
qmp=$HUTCH_HOME/run/disp/qmp-user.sock
for ((i = 0; i < N; i++)); do
	bench_time "$HUTCH" screenshot disp "$BENCH_TMP/s.png" >/dev/null 2>&1 || bench_die "screenshot failed"
	SHOT+=("$ELAPSED_MS")
	bench_time python3 - "$qmp" "$BENCH_TMP/raw.png" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile('rw')
f.readline()
for c in ({"execute": "qmp_capabilities"}, {"execute": "screendump", "arguments": {"filename": sys.argv[2], "format": "png"}}):
    f.write(json.dumps(c) + "\n"); f.flush()
    while 'event' in json.loads(f.readline()): pass
PY
	RAW+=("$ELAPSED_MS")
done
"$HUTCH" exec disp -- sh -c 'mkdir -p /run/hutch; printf "a clipboard line" >/run/hutch/clipboard'
CLIP=() CAT=()
for ((i = 0; i < N; i++)); do
	bench_time "$HUTCH" clip copy disp >/dev/null 2>&1 || bench_die "clip copy failed"
	CLIP+=("$ELAPSED_MS")
	bench_time "$HUTCH" exec disp -- cat /run/hutch/clipboard >/dev/null 2>&1
	CAT+=("$ELAPSED_MS")
done
"$HUTCH" stop disp >>"$BENCH_TMP/hutch.log" 2>&1

p=$(bench_median "${PLAIN[@]}") d=$(bench_median "${DISP[@]}") s=$(bench_median "${SND[@]}")
sh=$(bench_median "${SHOT[@]}") raw=$(bench_median "${RAW[@]}") cl=$(bench_median "${CLIP[@]}") ca=$(bench_median "${CAT[@]}")
bench_title "desktop: display, sound, screenshot, clipboard (micro VM, $(bench_accel))"
echo "$N runs each; wall-clock ms."
echo
bench_header "what" "median ms" "p90 ms" "ratio to the peer"
bench_row "peer: \`hutch start\` of a plain micro VM" "$p" "$(bench_p90 "${PLAIN[@]}")" "1.00"
bench_row "**start with display: {video: virtio, remote: vnc}**" "$d" "$(bench_p90 "${DISP[@]}")" "**$(bench_ratio "$d" "$p")**"
bench_row "**start with sound (microvm pcie=on, intel-hda)**" "$s" "$(bench_p90 "${SND[@]}")" "**$(bench_ratio "$s" "$p")**"
bench_row "peer: bare QMP screendump (python)" "$raw" "$(bench_p90 "${RAW[@]}")" "1.00"
bench_row "**\`hutch screenshot\`**" "$sh" "$(bench_p90 "${SHOT[@]}")" "**$(bench_ratio "$sh" "$raw")**"
bench_row "peer: \`hutch exec -- cat /run/hutch/clipboard\`" "$ca" "$(bench_p90 "${CAT[@]}")" "1.00"
bench_row "**\`hutch clip copy\`**" "$cl" "$(bench_p90 "${CLIP[@]}")" "**$(bench_ratio "$cl" "$ca")**"
bench_load_note
