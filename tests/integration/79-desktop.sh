#!/usr/bin/env bash
# Menu entries and colours. create writes entries for the spec's apps; desktop sync adds the apps
# the running guest has (its *.desktop files, untrusted: only Name, Icon, the program of Exec and
# main Categories are kept and checked; hidden, malformed and hostile entries are dropped); icons
# are re-encoded by libpng into the hicolor theme; a folder per VM (.directory + menu merge file).
# desktop-file-validate passes on all of it; an entry's Exec line starts the stopped VM and runs
# the app; desktop rm and destroy remove everything. list shows the colour as a swatch on a TTY.
# once
. "$(dirname "$0")/lib.sh"
exec </dev/null

share=$HUTCH_HOME/share
menus=$HUTCH_HOME/config/menus/applications-merged
cat >"$T/vms.yml" <<'EOF2'
work:
  source: {template: micro}
  memory: 256M
  color: "#2ecc71"
  apps: [uname, hostname]
EOF2
run hutch create work --from "$T/vms.yml"
is "$RC" 0 "create a VM with apps: [uname, hostname] and a colour"
ok "create wrote the entry for uname" test -f "$share/applications/hutch-work-uname.desktop"
ok "and for hostname" test -f "$share/applications/hutch-work-hostname.desktop"
ok "the VM's menu folder has a .directory entry" test -f "$share/desktop-directories/hutch-work.directory"
ok "and an XDG menu merge file" test -f "$menus/hutch-work.menu"
entry=$(cat "$share/applications/hutch-work-uname.desktop")
contains "$entry" "Exec=hutch run work -- uname %U" "Exec runs the app in the VM through hutch run"
contains "$entry" "Name=[work] Uname" "Name is [VM] App"
contains "$entry" "Categories=X-hutch-work;" "the entry is in the VM's own category (its menu folder)"
contains "$entry" "X-Hutch-Color=#2ecc71" "the VM's colour is in the entry"
if command -v desktop-file-validate >/dev/null; then
	run desktop-file-validate "$share/applications/hutch-work-uname.desktop" \
		"$share/applications/hutch-work-hostname.desktop" "$share/desktop-directories/hutch-work.directory"
	is "$RC" 0 "desktop-file-validate passes on the spec's entries and the folder"
	unlike "$OUT" "error:" "with no errors (the only hint: no main category, so entries show in the VM's folder)"
else
	fail "desktop-file-validate is installed" "apt-get install desktop-file-utils"
fi
if command -v xmllint >/dev/null; then
	ok "the menu merge file is well-formed XML" xmllint --noout "$menus/hutch-work.menu"
fi

run hutch start work
is "$RC" 0 "start work"
# guest entries: one good, one hidden, one with a relative Exec, one with markup and controls in
# its Name, a non-application, and a file whose name is not a valid app id
hutch exec work -- sh -c 'mkdir -p /usr/share/applications /usr/share/pixmaps && cd /usr/share/applications &&
printf "[Desktop Entry]\nType=Application\nName=Hello World\nName[de]=Hallo\nExec=/bin/echo hello %%U\nIcon=hello\nCategories=Utility;Network;Bogus;\n" >hello.desktop &&
printf "[Desktop Entry]\nType=Application\nName=Hidden\nExec=true\nNoDisplay=true\n" >hidden.desktop &&
printf "[Desktop Entry]\nType=Application\nName=Rel\nExec=../../bin/sh -c evil\n" >rel.desktop &&
printf "[Desktop Entry]\nType=Application\nName=<b>Bold</b>\001\033[31m\nExec=cat\n" >bold.desktop &&
printf "[Desktop Entry]\nType=Link\nName=Link\nURL=http://x\n" >link.desktop &&
printf "[Desktop Entry]\nType=Application\nName=Bad\nExec=true\n" >"bad name;x.desktop"'
python3 - "$T/hello.png" <<'PY'
import struct, sys, zlib
w = h = 48
raw = b''.join(b'\0' + bytes([200, 40, 40, 255] * w) for _ in range(h))
def chunk(t, b): return struct.pack('>I', len(b)) + t + b + struct.pack('>I', zlib.crc32(t + b))
png = b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 6, 0, 0, 0)) + \
      chunk(b'tEXt', b'Comment\0from the guest') + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b'')
open(sys.argv[1], 'wb').write(png)
PY
run hutch cp "$T/hello.png" work:/usr/share/pixmaps/hello.png
is "$RC" 0 "a 48x48 icon in the guest's pixmaps"

run hutch --json desktop sync work
is "$RC" 0 "desktop sync work"
is "$(json_get "$OUT" 'j["discovered"]')" "2" "two guest apps pass the checks (hello and bold)"
ok "the guest's hello got an entry" test -f "$share/applications/hutch-work-hello.desktop"
hello=$(cat "$share/applications/hutch-work-hello.desktop")
contains "$hello" "Name=[work] Hello World" "its Name is kept (unlocalised)"
contains "$hello" "Exec=hutch run work -- /bin/echo %U" "only the program of Exec is kept"
contains "$hello" "X-Hutch-Guest-Categories=Utility;Network;" "only main categories are kept"
contains "$hello" "Icon=hutch-work-hello" "the icon is named for the VM and app"
bold=$(cat "$share/applications/hutch-work-bold.desktop")
unlike "$bold" $'\033' "control characters in a guest Name never reach the host file"
for f in hidden rel link; do
	ok "no entry for the guest's $f.desktop" test ! -e "$share/applications/hutch-work-$f.desktop"
done
ok "no entry for a guest file whose name is not an app id" test -z "$(ls "$share/applications" | grep -c 'bad' | grep -v '^0$')"
icon=$share/icons/hicolor/48x48/apps/hutch-work-hello.png
ok "the icon was installed into the hicolor theme (48x48)" test -f "$icon"
run grep -c "from the guest" "$icon"
is "$OUT" "0" "the icon was re-encoded (the guest's text chunk is gone)"
run desktop-file-validate "$share"/applications/hutch-work-*.desktop
is "$RC" 0 "desktop-file-validate passes on every entry, guest ones included"
unlike "$OUT" "error:" "with no errors"

# the Exec line starts the stopped VM on demand and runs the app
hutch stop work >/dev/null
exec_line=$(sed -n 's/^Exec=//p' "$share/applications/hutch-work-uname.desktop")
hutch_dir=$(dirname "$HUTCH")
run env PATH="$hutch_dir:$PATH" timeout -k 5 300 sh -c "${exec_line% %U}"
is "$RC" 0 "the entry's Exec line ran"
is "$OUT" "Linux" "it started the VM and the app (uname)"
ok "the VM runs after the menu entry started it" test -n "$(hutch list | grep '^work .*running')"

# colours in list
run script -qec "$HUTCH list" /dev/null
contains "$OUT" $'\033[48;2;46;204;113m' "list on a TTY shows the colour as a swatch"
run env NO_COLOR=1 script -qec "$HUTCH list" /dev/null
unlike "$OUT" $'\033\\[48' "not with NO_COLOR"
run hutch --json list
is "$(json_get "$OUT" '[v["color"] for v in j if v["name"] == "work"][0]')" "#2ecc71" "list --json gives the colour"

run hutch desktop rm work
is "$RC" 0 "desktop rm work"
ok "the entries are gone" test -z "$(ls "$share/applications" 2>/dev/null)"
ok "the icon is gone" test ! -e "$icon"
ok "the folder is gone" test ! -e "$share/desktop-directories/hutch-work.directory" -a ! -e "$menus/hutch-work.menu"
hutch desktop sync work >/dev/null
hutch stop work >/dev/null
run hutch destroy work
is "$RC" 0 "destroy work"
ok "destroy removed its menu entries too" test -z "$(ls "$share/applications" 2>/dev/null)"

cat >"$T/bad.yml" <<'EOF2'
bad:
  source: {template: micro}
  color: blurple
EOF2
run hutch create bad --from "$T/bad.yml"
like "$ERR" "bad.yml:3: color: invalid colour 'blurple'" "an unknown colour names file:line: key"

done_testing
