#!/usr/bin/env bash
# Notifications (issue 12): a guest's notify-send reaches the host's notification service, titled
# "[NAME] summary", with the VM's name and colour as hints, no actions, markup stripped; a 1 MiB body
# is cut; a flood of 10,000 is rate-limited; notifications: false forwards nothing. The host side is
# a real dbus-daemon session bus started here with a notification server (notify-server.py,
# python3-dbus); the guest is the Debian root filesystem with dbus and libnotify
# (HUTCH_GUEST_ROOTFS) booted as a container image, where the agent starts a session bus and
# hutch-notifyd owns org.freedesktop.Notifications on it.
# once
# timeout: 1800
. "$(dirname "$0")/lib.sh"
exec </dev/null

if [ -z "${HUTCH_GUEST_ROOTFS:-}" ] || [ ! -r "$HUTCH_GUEST_ROOTFS" ]; then
	echo "ok 1 # SKIP no guest root filesystem (run.sh makes it as root: tests/fixtures/guest-rootfs.sh)"
	echo "1..1"
	exit 0
fi
if ! python3 -c 'import dbus, gi' 2>/dev/null || ! command -v dbus-daemon >/dev/null; then
	echo "ok 1 # SKIP no dbus-daemon or python3-dbus/python3-gi on the host"
	echo "1..1"
	exit 0
fi
export HUTCH_CMD_TIMEOUT=1200

# the host's session bus and its notification server, gone with the test
bus_pid= srv_pid=
notify_cleanup()
{
	local rc=$?
	[ -z "$srv_pid" ] || kill "$srv_pid" 2>/dev/null
	[ -z "$bus_pid" ] || kill "$bus_pid" 2>/dev/null
	(exit $rc)
	_cleanup
}
trap notify_cleanup EXIT
dbus-daemon --session --fork --address="unix:path=$T/bus" --print-pid=1 >"$T/bus.pid"
bus_pid=$(cat "$T/bus.pid")
export DBUS_SESSION_BUS_ADDRESS="unix:path=$T/bus"
got=$T/got.jsonl
: >"$got"
python3 "$_lib_dir/notify-server.py" "$got" 2>"$T/server.log" &
srv_pid=$!
owned() { dbus-send --session --print-reply --dest=org.freedesktop.DBus / org.freedesktop.DBus.NameHasOwner string:org.freedesktop.Notifications 2>/dev/null | grep -q true; }
ok "the host's notification server owns org.freedesktop.Notifications" wait_until 60 owned

# the OCI image of the guest root filesystem: run.sh's cached one (HUTCH_GUEST_OCI), else made here
if [ -n "${HUTCH_GUEST_OCI:-}" ] && [ -d "$HUTCH_GUEST_OCI/layout" ]; then
	ln -s "$HUTCH_GUEST_OCI" "$T/img"
fi
ok "an OCI image of the guest root filesystem (dbus, libnotify)" \
	sh -c '[ -d "$1/layout" ] || python3 "$2" "$3" "$1" --no-kernel' sh "$T/img" "$_lib_dir/oci-image.py" "$HUTCH_GUEST_ROOTFS"
cat >"$T/vms.yml" <<YML
g:
  source: {oci: "oci:$T/img/layout:test"}
  memory: 1G
  disk: 4G
  color: "#cc0000"
quiet:
  source: {oci: "oci:$T/img/layout:test"}
  memory: 512M
  disk: 4G
  notifications: false
YML
run hutch create -f "$T/vms.yml" g
is "$RC" 0 "create g (notifications default to true)"
run hutch start g --timeout 600
is "$RC" 0 "start g"
[ "$RC" -eq 0 ] || diag "$(tail -20 "$HUTCH_HOME/data/vms/g/console.log" 2>/dev/null)"

# one from notify-send, as a program in the guest sends it
run hutch exec g -- notify-send -u critical -a mail "New <b>mail</b> &amp; more" 'from <a href="http://x">bob</a>'
is "$RC" 0 "exec g -- notify-send: the guest's session bus has a notification server"
[ "$RC" -eq 0 ] || diag "$(grep -i notif "$HUTCH_HOME/data/vms/g/console.log" 2>/dev/null | tail)"
first() { [ -s "$got" ]; }
ok "the host's server got it" wait_until 120 first
line=$(head -1 "$got")
is "$(json_get "$line" 'j["summary"]')" "[g] New mail & more" "summary: [NAME] and the text, markup stripped"
is "$(json_get "$line" 'j["body"]')" "from bob" "body: markup stripped"
is "$(json_get "$line" 'j["app"]')" "[g] mail" "app name: [NAME] app"
is "$(json_get "$line" 'j["actions"]')" "[]" "no actions"
is "$(json_get "$line" 'j["hints"]["x-hutch-vm"], j["hints"]["x-hutch-color"], j["hints"]["urgency"]')" \
	"('g', '#cc0000', 2)" "hints: the VM's name and colour, the urgency"

# a 1 MiB body, through the guest's own libdbus (one process)
flood() { hutch exec g -- python3 -c "$(cat "$_lib_dir/notify-flood.py")" "$@"; }
run flood big 1 1048576
is "$OUT" "1" "the guest sent one notification with a 1 MiB body"
big() { grep -q '"summary": "\[g\] big"' "$got"; }
ok "the host got it" wait_until 120 big
body=$(grep '"summary": "\[g\] big"' "$got" | head -1 | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["body"]))')
is "$body" 1001 "its body is cut to 1000 characters and an ellipsis"

# a flood: 10,000 from one process, as fast as the guest can send them
run flood flood 10000 10
is "$OUT" "10000" "the guest sent 10,000 notifications"
# When one sent after the flood arrives, the host has handled every one before it (they come in
# order); the rate lets it through once the flood has stopped using up the VM's allowance.
after() { grep -q '"summary": "\[g\] after"' "$got" || { flood after 1 1 >/dev/null 2>&1 && false; }; }
ok "one sent after the flood gets through" wait_until 300 after
n=$(grep -c '"summary": "\[g\] flood"' "$got")
ok "the flood is rate-limited: $n of 10,000 shown" test "$n" -ge 1 -a "$n" -lt 1000
contains "$(cat "$HUTCH_HOME"/data/vms/g/monitor.log 2>/dev/null)" "dropped so far" "the monitor log says notifications were dropped"

run hutch stop g
is "$RC" 0 "stop g"

# notifications: false: the agent is never asked, so the guest has no session bus and no server
run hutch create -f "$T/vms.yml" quiet
is "$RC" 0 "create quiet (notifications: false)"
run hutch start quiet --timeout 600
is "$RC" 0 "start quiet"
before=$(wc -l <"$got")
run hutch exec quiet -- sh -c 'test -S /run/user/0/bus || echo no-bus; notify-send quiet hello'
is "$OUT" "no-bus" "quiet has no session bus: the agent started none"
ok "notify-send in quiet fails" test "$RC" -ne 0
is "$(grep -c '\[quiet\]' "$got")" 0 "nothing from quiet reached the host"
is "$(wc -l <"$got")" "$before" "the host's server got nothing more"
run hutch stop quiet
is "$RC" 0 "stop quiet"

done_testing
