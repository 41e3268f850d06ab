#!/usr/bin/env bash
# The two-level clipboard. Two micro VMs (no graphical session: their clipboard is the file
# /run/hutch/clipboard). Without a host desktop the global clipboard is hutch's own buffer in the
# runtime dir (mode 0600). Nothing crosses on its own: `clip copy A` then `clip paste B` does. The
# cap (clipboard.max) and the UTF-8 check refuse oversized and binary guest content and leave the
# global clipboard as it was. image/png crosses only where clipboard.types allows it, and what
# reaches the host is libpng's re-encoding (no ancillary chunks; a corrupt PNG is refused). Under Xvfb
# the global clipboard is the X11 CLIPBOARD, through xclip.
# once
. "$(dirname "$0")/lib.sh"
exec </dev/null
unset DISPLAY WAYLAND_DISPLAY

cat >"$T/vms.yml" <<'EOF2'
a:
  source: {template: micro}
  memory: 256M
  clipboard: {max: 1K, types: [text/plain, image/png]}
b:
  source: {template: micro}
  memory: 256M
EOF2
for v in a b; do
	run hutch create "$v" --from "$T/vms.yml"
	is "$RC" 0 "create $v"
done
hutch start a >"$T/start-a" 2>&1 &
pa=$!
run hutch start b
is "$RC" 0 "start b"
wait "$pa"
is "$?" 0 "start a"

gclip() { hutch exec "$1" -- sh -c 'cat /run/hutch/clipboard 2>/dev/null'; }
hutch exec a -- sh -c 'mkdir -p /run/hutch && printf "secret from a: \303\251t\303\251" >/run/hutch/clipboard'
is "$(gclip b)" "" "b's clipboard is empty: a's does not cross on its own"
run hutch clip show
is "$OUT" "" "the global clipboard starts empty"

run hutch clip copy a
is "$RC" 0 "clip copy a"
contains "$OUT" "copied 20 bytes from the clipboard of 'a'" "it says how much it copied"
run hutch clip show
is "$OUT" "secret from a: été" "clip show prints the global clipboard"
ok "without a desktop the global clipboard is hutch's buffer in the runtime dir, mode 0600" \
	test "$(stat -c %a "$HUTCH_HOME/run/clipboard")" = 600
is "$(gclip b)" "" "b still has nothing: copy does not paste"
run hutch clip paste b
is "$RC" 0 "clip paste b"
is "$(gclip b)" "secret from a: été" "b's clipboard now holds what a copied"
run hutch --json clip show
is "$(json_get "$OUT" 'j["global"], j["bytes"]')" "('file', 20)" "clip show --json: the backend and the size"

hutch exec a -- sh -c 'head -c 2048 /dev/zero | tr "\0" x >/run/hutch/clipboard'
run hutch clip copy a
is "$RC" 1 "a clipboard over a's clipboard.max (1K) is refused"
contains "$ERR" "more than its cap of 1024 bytes" "the error names the cap"
hutch exec a -- sh -c 'printf "\377\376bin\000ary" >/run/hutch/clipboard'
run hutch clip copy a
like "$ERR" "not UTF-8 text" "binary content is refused"
run hutch clip show
is "$OUT" "secret from a: été" "the global clipboard is unchanged by refused copies"
head -c 4096 /dev/zero | tr '\0' y >"$HUTCH_HOME/run/clipboard"
run hutch clip paste a
like "$ERR" "more than 1024 bytes" "pasting more than the target's cap is refused"
run hutch clip copy nosuch
is "$RC" 1 "clip copy of an unknown VM fails"

# image/png: a 4x3 PNG with a text chunk, made here (zlib, no image library needed)
mkpng() {
	python3 - "$1" "$2" <<'PY'
import struct, sys, zlib
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
raw = b"".join(b"\0" + b"".join(bytes([60 * x, 80 * y, 200]) for x in range(4)) for y in range(3))
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 3, 8, 2, 0, 0, 0)) + \
      chunk(b"tEXt", b"Comment\0guest-secret") + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
if sys.argv[2] == "corrupt":
    png = png[:-20] + bytes([png[-20] ^ 0xff]) + png[-19:]
open(sys.argv[1], "wb").write(png)
PY
}
pngsize() { python3 -c 'import struct,sys; d=open(sys.argv[1],"rb").read(); assert d[:8]==b"\x89PNG\r\n\x1a\n"; print("%dx%d" % struct.unpack(">II", d[16:24]))' "$1"; }
mkpng "$T/in.png" good
mkpng "$T/bad.png" corrupt
hutch exec a -- sh -c 'cat >/run/hutch/clipboard.png' <"$T/in.png"
cp "$HUTCH_HOME/run/clipboard" "$T/text-before"
run hutch clip copy a --type image/png
is "$RC" 0 "clip copy a --type image/png (a allows it)"
is "$(pngsize "$HUTCH_HOME/run/clipboard.png")" "4x3" "the global clipboard holds a 4x3 PNG"
ok "it is libpng's re-encoding: the guest's text chunk is gone" sh -c "! grep -q guest-secret '$HUTCH_HOME/run/clipboard.png'"
hutch clip show --type image/png >"$T/shown.png"
is "$(pngsize "$T/shown.png")" "4x3" "clip show --type image/png prints it"
ok "the text clipboard is a separate type, unchanged" cmp -s "$T/text-before" "$HUTCH_HOME/run/clipboard"
run hutch clip paste b --type image/png
is "$RC" 1 "clip paste b --type image/png: b does not allow images"
contains "$ERR" "'b' does not allow image/png" "the error names the VM and the type"
hutch exec a -- rm -f /run/hutch/clipboard.png
run hutch clip paste a --type image/png
is "$RC" 0 "clip paste a --type image/png"
hutch exec a -- cat /run/hutch/clipboard.png >"$T/back.png"
is "$(pngsize "$T/back.png")" "4x3" "a's guest clipboard received the PNG"
hutch exec a -- sh -c 'cat >/run/hutch/clipboard.png' <"$T/bad.png"
cp "$HUTCH_HOME/run/clipboard.png" "$T/before.png"
run hutch clip copy a --type image/png
is "$RC" 1 "a corrupt PNG is refused"
contains "$ERR" "PNG" "the error says why (libpng's message)"
ok "the global image is unchanged" cmp -s "$T/before.png" "$HUTCH_HOME/run/clipboard.png"
run hutch clip copy a --type image/gif
is "$RC" 2 "an unknown --type is a usage error"

if command -v Xvfb >/dev/null && command -v xclip >/dev/null; then
	disp=:$((90 + $$ % 400))
	Xvfb "$disp" -nolisten tcp >"$T/xvfb.log" 2>&1 &
	xpid=$!
	export DISPLAY=$disp
	wait_until 20 xclip -selection clipboard -o -quiet </dev/null >/dev/null 2>&1 || wait_until 20 test -S "/tmp/.X11-unix/X${disp#:}"
	hutch exec a -- sh -c 'printf "from a via X11" >/run/hutch/clipboard'
	run hutch clip copy a
	is "$RC" 0 "clip copy a with an X11 desktop"
	run timeout 10 xclip -selection clipboard -o
	is "$OUT" "from a via X11" "the VM's clipboard reached the X11 CLIPBOARD (xclip reads it)"
	printf 'typed on the host' | timeout 10 xclip -selection clipboard -i 2>/dev/null
	run hutch clip show
	is "$OUT" "typed on the host" "clip show reads the X11 CLIPBOARD"
	run hutch clip paste b
	is "$RC" 0 "clip paste b from the X11 CLIPBOARD"
	is "$(gclip b)" "typed on the host" "b received the host's clipboard"
	run hutch --json clip show
	is "$(json_get "$OUT" 'j["global"]')" "xclip" "the backend is xclip"
	hutch exec a -- sh -c 'cat >/run/hutch/clipboard.png' <"$T/in.png"
	run hutch clip copy a --type image/png
	is "$RC" 0 "clip copy a --type image/png with an X11 desktop"
	timeout 10 xclip -selection clipboard -t image/png -o >"$T/x.png" 2>/dev/null
	is "$(pngsize "$T/x.png")" "4x3" "the X11 CLIPBOARD offers image/png (xclip -t image/png reads it)"
	kill "$xpid" 2>/dev/null
	unset DISPLAY
else
	pass "# SKIP Xvfb or xclip not installed"
fi

done_testing
