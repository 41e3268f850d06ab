#!/usr/bin/env bash
# Sound: a micro VM with sound: {playback: true} gets intel-hda + hda-output (microvm with its PCIe
# bus); with HUTCH_TEST_AUDIO_WAV QEMU's wav audiodev records the guest's playback. The guest
# plays a 1 s tone through the agent's ALSA ioctl player (no libasound in micro); after a clean
# stop the WAV file's header is written and it holds samples that are not silent.
# once
. "$(dirname "$0")/lib.sh"
exec </dev/null

cat >"$T/vms.yml" <<'EOF2'
snd:
  source: {template: micro}
  memory: 256M
  sound: {playback: true, capture: false}
EOF2
run hutch create snd --from "$T/vms.yml"
is "$RC" 0 "create a micro VM with sound"
run hutch inspect snd --render
contains "$OUT" "hda-output,audiodev=snd0" "playback only: hda-output (no capture device)"
contains "$OUT" "pcie=on" "the micro VM gets microvm's PCIe bus for intel-hda"
unlike "$OUT" "hda-duplex" "capture is off by default"

export HUTCH_TEST_AUDIO_WAV=$T/out.wav
run hutch start snd
is "$RC" 0 "start snd with the wav audiodev"
run hutch exec snd -- cat /proc/asound/cards
contains "$OUT" "HDA Intel" "the guest has an HD audio card"
run hutch exec snd -- /init --tone 1
is "$RC" 0 "the guest plays a tone (hutch-agent --tone)"
contains "$OUT" "played 1 s of 440 Hz" "the player says what it played"
run hutch stop snd
is "$RC" 0 "clean stop (the wav header is written when QEMU quits)"
unset HUTCH_TEST_AUDIO_WAV

run python3 - "$T/out.wav" <<'PY'
import struct, sys, wave
w = wave.open(sys.argv[1])
n = w.getnframes()
d = w.readframes(n)
s = struct.unpack('<%dh' % (len(d) // 2), d)
print(w.getnchannels(), w.getsampwidth(), n, max(map(abs, s)) if s else 0, sum(1 for x in s if x))
PY
is "$RC" 0 "the WAV file parses (its header was written)"
read -r ch width frames peak nonzero <<<"$OUT"
is "$ch/$width" "2/2" "16-bit stereo"
ok "it holds about a second of audio ($frames frames)" test "${frames:-0}" -gt 20000
ok "the samples are not silent (peak $peak)" test "${peak:-0}" -gt 1000
ok "most samples of the tone are non-zero ($nonzero of $((frames * 2)))" test "${nonzero:-0}" -gt "$((frames / 2))"

done_testing
