#!/usr/bin/env bash
# hutch usb against a fake /sys/bus/usb and /dev/bus/usb (HUTCH_SYSFS_ROOT): this machine has no
# USB devices to hand to a VM. ls and its --json, matching, the error for a node the user can't
# open (it names the node and the udev rule), and, against a real micro VM, the fd really passed to
# QEMU (add-fd over the VM's QMP socket) up to device_add, which QEMU refuses there: microvm has no
# USB controller.
# once
. "$(dirname "$0")/lib.sh"
exec </dev/null

F=$T/fake
dev() # PORT BUS DEV VID PID SERIAL PRODUCT
{
	local d=$F/sys/bus/usb/devices/$1
	mkdir -p "$d" "$F/dev/bus/usb/$(printf %03d "$2")"
	echo "$2" >"$d/busnum"
	echo "$3" >"$d/devnum"
	echo "$4" >"$d/idVendor"
	echo "$5" >"$d/idProduct"
	[ -z "$6" ] || echo "$6" >"$d/serial"
	echo "$7" >"$d/product"
	: >"$F/dev/bus/usb/$(printf %03d "$2")/$(printf %03d "$3")"
}
dev usb1 1 1 1d6b 0002 "" "xHCI Host Controller"
dev 1-2 1 4 17ef 60e0 "" "ThinkPad Keyboard"
dev 1-3.1 1 7 046d c52b A02019100900 "USB Receiver"
export HUTCH_SYSFS_ROOT=$F

run hutch usb ls
is "$RC" 0 "usb ls exits 0"
like "$OUT" '^1-2 +001 004  17ef:60e0  - +ThinkPad Keyboard +-$' "a device: port, bus, device, id, product, no VM"
like "$OUT" '^1-3.1 +001 007  046d:c52b  A02019100900 +USB Receiver' "with its serial"
unlike "$OUT" 'xHCI' "root hubs are not listed"
run hutch usb ls --json
is "$(json_get "$OUT" '[d["id"] for d in j]')" "['17ef:60e0', '046d:c52b']" "--json lists the ids"
is "$(json_get "$OUT" 'j[1]["serial"]')" A02019100900 "--json: serial"
is "$(json_get "$OUT" 'j[0]["vm"]')" None "--json: held by no VM"

run hutch usb attach nosuch dead:beef
is "$RC" 1 "an absent device is an error"
contains "$ERR" "no USB device 'dead:beef'" "naming it"
run hutch usb attach nosuch 17ef
is "$RC" 1 "a malformed device is an error"
contains "$ERR" "expected VID:PID (17ef:60e0) or BUS-PORT (1-2.3)" "saying what is expected"

chmod 000 "$F/dev/bus/usb/001/004"
run hutch usb attach nosuch 17ef:60e0
is "$RC" 1 "a node the user can't open is an error"
contains "$ERR" "cannot open '$F/dev/bus/usb/001/004'" "naming the node"
contains "$ERR" 'ATTR{idVendor}=="17ef", ATTR{idProduct}=="60e0", TAG+="uaccess"' "and the udev rule"
chmod 644 "$F/dev/bus/usb/001/004"

run hutch usb attach nosuch 1-2
is "$RC" 1 "attaching to a VM that is not running fails"
contains "$ERR" "'nosuch' is not running" "and says so"

# A real VM: the fd goes to QEMU over the VM's QMP socket (add-fd), device_add names it by its
# fdset; microvm has no USB bus, so QEMU refuses, and hutch says why.
run hutch create u --template micro
run hutch start u
is "$RC" 0 "start a micro VM"
run hutch usb attach u 1-2
is "$RC" 1 "attaching to a micro VM fails"
contains "$ERR" "has no USB controller" "because microvm has no USB controller"
run hutch usb ls --json
is "$(json_get "$OUT" 'j[0]["vm"]')" None "and nothing is recorded as attached"
run hutch usb detach u 1-2
is "$RC" 1 "detaching a device the VM does not hold fails"
contains "$ERR" "is not attached to 'u'" "and says so"
run hutch stop u
is "$RC" 0 "stop"
done_testing
