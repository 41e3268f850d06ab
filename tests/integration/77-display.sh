#!/usr/bin/env bash
# Display: a micro VM with a virtio-gpu and VNC on a unix socket. `hutch screenshot` writes a PNG
# (QMP screendump, PNG by QEMU) of the guest's screen: its size is the guest's mode and it is not
# blank (the agent draws a banner on the framebuffer console). A real VNC client (vncsnapshot,
# through socat to the unix socket) reads the same screen. `hutch view --uri` (and `view` on a host
# without a display) prints the socket's URI; `view` with a display runs TigerVNC's viewer on the
# socket (under Xvfb here; remote-viewer cannot open VNC sockets); no TCP port is opened by the VM.
# once
. "$(dirname "$0")/lib.sh"
exec </dev/null

cat >"$T/vms.yml" <<'EOF2'
desk:
  source: {template: micro}
  memory: 256M
  display: {video: virtio, remote: vnc}
EOF2
run hutch create desk --from "$T/vms.yml"
is "$RC" 0 "create a micro VM with display: {video: virtio, remote: vnc}"
run hutch inspect desk --render
contains "$OUT" "virtio-gpu-device" "the render has a virtio-gpu (mmio) device"
contains "$OUT" "unix:$HUTCH_HOME" "VNC listens on a unix socket under HUTCH_HOME"
run hutch start desk
is "$RC" 0 "start desk"

sock=$(hutch view desk --uri)
is "$sock" "vnc+unix://$HUTCH_HOME/run/desk/vnc.sock" "view --uri prints the socket's URI"
run env -u DISPLAY -u WAYLAND_DISPLAY "$HUTCH" view desk
is "$OUT" "$sock" "view on a host with no display prints the URI too"
ok "the VNC socket exists" test -S "${sock#vnc+unix://}"
if command -v xtigervncviewer >/dev/null && command -v Xvfb >/dev/null; then
	# remote-viewer cannot open a VNC unix socket; view runs TigerVNC's viewer on it, here on Xvfb
	disp=:$((90 + $$ % 400))
	Xvfb "$disp" -nolisten tcp >"$T/xvfb.log" 2>&1 &
	xpid=$!
	wait_until 20 test -S "/tmp/.X11-unix/X${disp#:}"
	DISPLAY=$disp "$HUTCH" view desk >"$T/view.out" 2>"$T/view.err" &
	vpid=$!
	spoke() { grep -q "Using RFB protocol version" "$T/view.err"; }
	ok "view desk opens TigerVNC's viewer on the unix socket: it speaks RFB with QEMU" wait_until 60 spoke
	contains "$(cat "$T/view.err")" "${sock#vnc+unix://}" "the viewer connected to the VM's socket"
	kill "$vpid" "$xpid" 2>/dev/null
	wait "$vpid" "$xpid" 2>/dev/null
else
	run env DISPLAY=:9 PATH=/usr/bin:/bin "$HUTCH" view desk
	like "$ERR" "install tigervnc-viewer" "view of a VNC socket without TigerVNC's viewer says what to install"
fi
qpid=$(qemu_pids | head -1)
if [ -n "$qpid" ] && command -v ss >/dev/null; then
	run ss -Htlnp
	unlike "$OUT" "pid=$qpid," "QEMU listens on no TCP port"
fi

# pnginfo FILE: "WIDTHxHEIGHT DISTINCT" (distinct pixel values, up to 100), decoded with zlib
pnginfo()
{
	python3 - "$1" <<'PY'
import struct, sys, zlib
d = open(sys.argv[1], 'rb').read()
assert d[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
pos, idat = 8, b''
while pos < len(d):
    n, t = struct.unpack('>I4s', d[pos:pos + 8])
    body = d[pos + 8:pos + 8 + n]
    if t == b'IHDR':
        w, h, depth, ctype = struct.unpack('>IIBB', body[:10])
    elif t == b'IDAT':
        idat += body
    pos += 12 + n
bpp = {2: 3, 6: 4}[ctype]
raw, stride, prev, out = zlib.decompress(idat), w * bpp, bytearray(w * bpp), set()
for y in range(h):
    f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0
        b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    if len(out) < 100:
        out.update(bytes(line[i:i + bpp]) for i in range(0, stride, bpp))
    prev = line
print('%dx%d %d' % (w, h, len(out)))
PY
}

# the framebuffer console appears once virtio-gpu is up; until then QEMU shows its own 640x480 notice
drawn()
{
	hutch screenshot desk "$T/shot.png" >/dev/null 2>&1 && info=$(pnginfo "$T/shot.png") && [ "${info%% *}" != 640x480 ]
}
info=
wait_until 60 drawn
run hutch screenshot desk "$T/shot.png"
is "$RC" 0 "screenshot desk FILE.png"
like "$OUT" "shot.png: [0-9]+x[0-9]+" "screenshot prints the file and its size"
info=$(pnginfo "$T/shot.png")
is "${info%% *}" "1280x800" "the PNG has virtio-gpu's default mode, 1280x800"
ok "the PNG is not blank (more than one colour: ${info#* })" test "${info#* }" -gt 1
run hutch --json screenshot desk "$T/shot2.png"
is "$(json_get "$OUT" 'j["width"], j["height"]')" "(1280, 800)" "screenshot --json gives width and height"

if command -v vncsnapshot >/dev/null && command -v socat >/dev/null; then
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	socat "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr" "UNIX-CONNECT:${sock#vnc+unix://}" &
	spid=$!
	sleep 0.5
	run timeout 60 vncsnapshot -quiet "127.0.0.1::$port" "$T/vnc.jpg"
	kill "$spid" 2>/dev/null
	is "$RC" 0 "vncsnapshot (a real VNC client) reads the screen through the unix socket"
	dims=$(python3 - "$T/vnc.jpg" <<'PY'
import struct, sys
d = open(sys.argv[1], 'rb').read(); i = 2
while i < len(d):
    m, n = d[i + 1], struct.unpack('>H', d[i + 2:i + 4])[0]
    if m in (0xc0, 0xc1, 0xc2):
        h, w = struct.unpack('>HH', d[i + 5:i + 9]); print('%dx%d' % (w, h)); break
    i += 2 + n
PY
)
	is "$dims" "1280x800" "the VNC client sees the same 1280x800 screen"
else
	pass "# SKIP vncsnapshot or socat not installed"
fi

run hutch screenshot nosuch "$T/x.png"
is "$RC" 1 "screenshot of an unknown VM fails"
hutch stop desk >/dev/null
run hutch screenshot desk "$T/x.png"
like "$ERR" "not running" "screenshot of a stopped VM says it is not running"

cat >"$T/bad.yml" <<'EOF2'
q:
  source: {template: micro}
  display: {video: qxl}
EOF2
hutch create q --from "$T/bad.yml" >/dev/null 2>&1
run hutch start q
like "$ERR" "micro VMs do not have" "qxl on a micro VM is refused with a reason"

done_testing
