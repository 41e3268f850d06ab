#!/usr/bin/env bash
# The libvirt backend on qemu:///session (autospawned for this user): the domain hutch defines,
# start until the agent's HELLO over virDomainOpenChannel, exec/cp over the same channel, a domain
# destroyed behind hutch's back, concurrent starts, stop, destroy (undefined), run --rm (transient),
# a foreign domain of hutch's name, and a URI that never answers (list stays bounded).
# once
# timeout: 1200
. "$(dirname "$0")/lib.sh"
exec </dev/null

if ! command -v virsh >/dev/null || ! command -v virt-xml-validate >/dev/null; then
	fail "libvirt is installed (virsh, virt-xml-validate)" "install libvirt-clients libvirt-daemon-driver-qemu (scripts/deps.sh)"
	done_testing
fi
URI=qemu:///session
vsh() { timeout 60 virsh -q -c "$URI" "$@"; }
# one name per run: the session daemon is the user's, shared with other tests' homes
N=lv$$
D=hutch-$N

run hutch create "$N" --template micro --backend libvirt
is "$RC" 0 "create --backend libvirt defines a domain"
like "$(vsh list --all --name)" "^$D\$" "the domain is named hutch-NAME"
like "$(vsh dumpxml "$D")" "<hutch:vm .*name=.$N." "the domain carries hutch's metadata element"

run hutch inspect "$N"
like "$OUT" "backend: libvirt" "inspect names the backend"
like "$OUT" "uri: +qemu:///session" "inspect shows the URI"
run hutch inspect --json "$N"
is "$(json_get "$OUT" 'j["uri"]')" "$URI" "inspect --json has the uri"

run hutch inspect --render "$N"
is "$RC" 0 "inspect --render"
printf '%s\n' "$OUT" >"$T/render.xml"
ok "the rendered domain validates against libvirt's schema" virt-xml-validate "$T/render.xml" domain
like "$OUT" 'machine="microvm"' "micro is a microvm with direct kernel boot"
like "$OUT" 'name="org.hutch.agent.0"' "the agent channel"
like "$OUT" 'tsc_early_khz=[0-9]+ lpj=[0-9]+' "the qemu backend's TSC values under TCG"

run hutch list -a
like "$OUT" "^$N +stopped +libvirt " "list: stopped, BACKEND libvirt"

# autostart also sets the domain's own flag (virDomainSetAutostart), and off clears it
run hutch autostart "$N" on
is "$RC" 0 "autostart on"
like "$(vsh dominfo "$D")" "Autostart: +enable" "... sets the domain's autostart flag"
run hutch autostart "$N" off
is "$RC" 0 "autostart off"
like "$(vsh dominfo "$D")" "Autostart: +disable" "... clears it"
run hutch list -a --json
like "$OUT" "\"backend\": *\"libvirt\"" "list --json has backend"

run hutch start "$N" --timeout 300
is "$RC" 0 "start waits for the agent's HELLO through the channel"
like "$(vsh domstate "$D")" "running" "libvirt runs the domain"
run hutch list
like "$OUT" "^$N +running +libvirt +tcg" "list: running on libvirt"

run hutch exec "$N" -- uname -n
is "$OUT" "$N" "exec over virDomainOpenChannel"
head -c 3000000 /dev/urandom >"$T/blob"
want=$(sha256sum <"$T/blob" | cut -d' ' -f1)
got=$(hutch exec "$N" -- sha256sum <"$T/blob" | cut -d' ' -f1)
is "$got" "$want" "stdin streams through the channel, binary-safe"
run hutch exec "$N" -- sh -c 'exit 7'
is "$RC" 7 "exec returns the program's status"
run hutch cp "$T/blob" "$N:/tmp/blob"
is "$RC" 0 "cp into the VM over the channel"
run hutch cp "$N:/tmp/blob" "$T/back"
ok "cp back out gives the same bytes" cmp -s "$T/blob" "$T/back"
mkdir -p "$T/tree/sub"
echo hi >"$T/tree/sub/f"
mkfifo "$T/tree/fifo"
run hutch cp -r "$T/tree" "$N:/tmp/"
is "$RC" 0 "cp -r of a tree with a fifo"
is "$(printf '%s\n' "$ERR" | grep -c "skipping '.*fifo'")" 1 "... warns once, through the verb, about the fifo"
run hutch exec "$N" -- cat /tmp/tree/sub/f
is "$OUT" "hi" "... and copies the rest"

# usb attach on a libvirt VM goes to libvirt (virDomainAttachDeviceFlags), not to a QEMU socket of
# hutch's: a fake device (this machine has no USB) is opened by hutch, then refused by libvirt
F=$T/fakeusb
mkdir -p "$F/sys/bus/usb/devices/1-2" "$F/dev/bus/usb/001"
echo 1 >"$F/sys/bus/usb/devices/1-2/busnum"
echo 4 >"$F/sys/bus/usb/devices/1-2/devnum"
echo 17ef >"$F/sys/bus/usb/devices/1-2/idVendor"
echo 60e0 >"$F/sys/bus/usb/devices/1-2/idProduct"
echo "ThinkPad Keyboard" >"$F/sys/bus/usb/devices/1-2/product"
: >"$F/dev/bus/usb/001/004"
run env HUTCH_SYSFS_ROOT="$F" hutch usb attach "$N" 17ef:60e0
is "$RC" 1 "usb attach of a device libvirt cannot find fails"
like "$ERR" "libvirt could not attach 17ef:60e0 \\(bus 1, device 4\\) to '$N'" "... with libvirt's own refusal"

# port add|rm|ls at runtime: HMP hostfwd_add on the passthrough netdev (virDomainQemuMonitorCommand)
hp=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
run hutch port "$N" add "$hp:7777"
is "$RC" 0 "port add on a running libvirt VM"
run hutch port "$N" ls
like "$OUT" "^127.0.0.1:$hp:7777/tcp\$" "port ls lists it"
run hutch exec "$N" -- sh -c 'setsid sh -c "echo hello-port | nc -l -p 7777" </dev/null >/dev/null 2>&1 &'
got=""
for _ in $(seq 1 60); do
	got=$(python3 -c "
import socket,sys
try:
    s=socket.create_connection(('127.0.0.1',$hp),timeout=5); print(s.recv(100).decode().strip())
except OSError: pass" 2>/dev/null)
	[ -n "$got" ] && break
	sleep 1
done
is "$got" "hello-port" "... and 127.0.0.1:HOST reaches the guest's port"
run hutch port "$N" add "$hp:7777"
is "$RC" 1 "adding the same host port again fails"
like "$ERR" "already forwarded" "... saying so"
run hutch port "$N" rm "$hp:7777"
is "$RC" 0 "port rm"
run hutch port "$N" ls
unlike "$OUT" "$hp" "... and it is gone from ls"
# SO_REUSEADDR as QEMU binds: our own test connection may have left a TIME_WAIT on the port
ok "... and from QEMU: the host port is free again" python3 -c "
import socket; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1',$hp)); s.listen()"

run hutch start "$N"
is "$RC" 3 "start of a running libvirt VM fails (3: already running)"
like "$ERR" "already running" "... saying already running"

# destroyed behind hutch's back: stopped, and start works again
vsh destroy "$D" >/dev/null
run hutch list -a
like "$OUT" "^$N +stopped +libvirt" "a domain destroyed with virsh shows as stopped"

# 20 concurrent starts: one running domain, the rest "already running" or "busy"
for i in $(seq 1 20); do
	(hutch start "$N" --timeout 300 >"$T/cs.$i.out" 2>"$T/cs.$i.err"; echo $? >"$T/cs.$i.rc") &
done
wait
oks=0 others=0
for i in $(seq 1 20); do
	if [ "$(cat "$T/cs.$i.rc")" = 0 ]; then
		oks=$((oks + 1))
	elif grep -qE "already running|busy" "$T/cs.$i.err"; then
		others=$((others + 1))
	else
		diag "start $i: $(cat "$T/cs.$i.err")"
	fi
done
is "$oks" 1 "20 concurrent starts: exactly one starts the domain (after virsh destroy)"
is "$others" 19 "... the other 19 fail 'already running' or 'busy'"
is "$(vsh list --name | grep -c "^$D\$")" 1 "... and libvirt runs one domain"
run hutch exec "$N" -- true
is "$RC" 0 "exec works after the restart"

# the session daemon is killed while a start waits for the HELLO: a clear error, nothing lost
run hutch stop --force "$N"
hutch start "$N" --timeout 300 >"$T/ks.out" 2>"$T/ks.err" &
ks=$!
wait_until 60 sh -c "virsh -q -c '$URI' domstate '$D' 2>/dev/null | grep -q running"
pidf=$HOME/.cache/libvirt/libvirtd.pid
[ -s "$pidf" ] && kill -9 "$(cat "$pidf")"
wait "$ks"
RC=$?
is "$RC" 1 "a start whose libvirt daemon is killed fails"
like "$(cat "$T/ks.err")" "libvirt|channel|connect" "... with an error naming what went away"
run hutch stop --force "$N"
run hutch start "$N" --timeout 300
is "$RC" 0 "... and after a stop the VM starts again (the daemon autospawns anew)"

run hutch stop "$N"
is "$RC" 0 "stop"
like "$OUT" "stopped $N \(agent" "stop is the agent's poweroff first"
like "$(vsh domstate "$D")" "shut off" "the domain is shut off"

run hutch destroy "$N"
is "$RC" 0 "destroy"
unlike "$(vsh list --all --name)" "^$D\$" "destroy undefines the domain"

# run --rm: a transient domain that vanishes
run hutch run --rm --backend libvirt micro -- uname -s
is "$RC" 0 "run --rm --backend libvirt"
is "$OUT" "Linux" "... runs the program"
unlike "$(vsh list --all --name)" "^hutch-micro-" "... and leaves no domain behind"
is "$(vm_names | grep -c '^micro-')" 0 "... and no VM"

# a domain of hutch's name that hutch did not define is left alone
F=lvf$$
cat >"$T/foreign.xml" <<EOF
<domain type='qemu'><name>hutch-$F</name><memory unit='MiB'>64</memory>
<os><type arch='x86_64' machine='q35'>hvm</type></os></domain>
EOF
vsh define "$T/foreign.xml" >/dev/null
run hutch create "$F" --template micro --backend libvirt
is "$RC" 1 "create refuses a domain of its name that is not hutch's"
like "$ERR" "a libvirt domain 'hutch-$F' exists at .* and is not hutch's" "... and says so"
like "$(vsh list --all --name)" "^hutch-$F\$" "... and leaves it alone"
vsh undefine "hutch-$F" >/dev/null

# a URI that accepts and never answers: list is bounded, shows unknown with the reason
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $port)); s.listen(8)
conns = []
t = time.time()
while time.time() - t < 120:
    s.settimeout(1)
    try: conns.append(s.accept())
    except OSError: pass
" &
sink=$!
cat >"$T/dead.yml" <<EOF
dead:
  source: {template: micro}
  backend: libvirt
  uri: qemu+tcp://127.0.0.1:$port/session
EOF
mkdir -p "$HUTCH_HOME/data/vms/dead"
cp "$T/dead.yml" "$HUTCH_HOME/data/vms/dead/spec.yml"
run hutch create ok1 --template micro
run hutch list -a
kill "$sink" 2>/dev/null
like "$OUT" "^dead +unknown +libvirt" "list shows a VM whose libvirt does not answer as unknown"
like "$OUT" "did not answer within" "... with the reason"
like "$OUT" "^ok1 +stopped +qemu" "... and still lists the rest"
rm -rf "$HUTCH_HOME/data/vms/dead"

# a container image's VM on libvirt: a microvm on the micro kernel, the image's root on virtio-mmio
python3 "$_lib_dir/oci-image.py" --busybox-base "$T/base.tar" >/dev/null &&
	python3 "$_lib_dir/oci-image.py" "$T/base.tar" "$T/img" --no-kernel >/dev/null
O=lo$$
run hutch create "$O" --oci "oci:$T/img/layout:test" -d 512M --backend libvirt
is "$RC" 0 "create a container image's VM on libvirt"
xml=$(vsh dumpxml "hutch-$O" 2>&1)
like "$xml" "machine='microvm'" "... a microvm"
like "$xml" "$HUTCH_HOME/data/vms/$O/disk.qcow2" "... with its root disk"
run hutch start "$O" --timeout 300
is "$RC" 0 "start it on libvirt"
run hutch exec "$O" -- sh -c 'awk '"'"'$2 == "/" { print $1 }'"'"' /proc/mounts'
is "$OUT" "/dev/vda" "the image's filesystem is the guest's root"
run hutch stop "$O"
is "$RC" 0 "stop it"
run hutch destroy "$O"
is "$RC" 0 "destroy it"
is "$(vsh list --all --name | grep -cx "hutch-$O")" 0 "its domain is undefined"

done_testing
