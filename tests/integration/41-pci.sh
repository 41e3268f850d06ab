#!/usr/bin/env bash
# hutch pci through the CLI, against a fake /sys and /proc (HUTCH_SYSFS_ROOT, HUTCH_PROC_ROOT):
# this machine has no IOMMU groups and no GPU. The driver switch itself, write by write, is
# tests/unit/test_pci.c (a kernel stand-in reacts to the writes there); here: the readings, the
# spec line, the refusals that must write nothing, and the root check. Boots nothing.
. "$(dirname "$0")/lib.sh"

F=$T/fake
mkdir -p "$F"

put() { mkdir -p "$(dirname "$F/$1")" && printf '%s' "$2" >"$F/$1"; }
func() # ADDR VENDOR DEVICE CLASS DRIVER GROUP
{
	local d=sys/bus/pci/devices/$1
	put "$d/vendor" "$2"$'\n'
	put "$d/device" "$3"$'\n'
	put "$d/class" "$4"$'\n'
	put "$d/driver_override" $'(null)\n'
	put "sys/bus/pci/drivers/$5/unbind" ""
	ln -s "../../drivers/$5" "$F/$d/driver"
	mkdir -p "$F/sys/kernel/iommu_groups/$6/devices"
	ln -s "../../../../kernel/iommu_groups/$6" "$F/$d/iommu_group"
	ln -s "../../../../bus/pci/devices/$1" "$F/sys/kernel/iommu_groups/$6/devices/$1"
}
put proc/cmdline $'BOOT_IMAGE=/vmlinuz intel_iommu=on iommu=pt\n'
put proc/sys/kernel/random/boot_id $'5d1c3c1e-0000-4000-8000-000000000001\n'
put sys/bus/pci/drivers_probe ""
put sys/bus/pci/drivers/vfio-pci/unbind ""
func 0000:01:00.0 0x10de 0x2684 0x030000 nvidia 13
func 0000:01:00.1 0x10de 0x22ba 0x040300 snd_hda_intel 13
func 0000:00:14.0 0x8086 0x7ae0 0x0c0330 xhci_hcd 7
put sys/module/nvidia/refcnt $'0\n'
mkdir -p "$F/sys/module/nvidia/holders" "$F/proc/4242/fd"
put proc/4242/comm $'python3\n'
put proc/4242/stat '4242 (python3) S 1 4242 4242 0'
ln -s /dev/nvidia0 "$F/proc/4242/fd/7"

export HUTCH_SYSFS_ROOT=$F HUTCH_PROC_ROOT=$F

run hutch pci status
is "$RC" 0 "pci status exits 0"
like "$OUT" '^IOMMU: +on' "the IOMMU is on"
like "$OUT" '^0000:01:00.0  IOMMU group 13  native' "the GPU, its group and mode"
like "$OUT" '0000:01:00.1  10de:22ba  audio +snd_hda_intel +native' "the audio function of the group"
unlike "$OUT" '0000:00:14.0' "a USB controller is no GPU"

run hutch pci status --json 00:14.0
is "$RC" 0 "pci status --json DEVICE exits 0"
is "$(json_get "$OUT" 'j["devices"][0]["functions"][0]["driver"]')" xhci_hcd "a chosen device is reported"
is "$(json_get "$OUT" 'j["iommu"]["on"]')" True "--json: iommu.on"

run hutch pci list
is "$RC" 0 "pci list exits 0"
contains "$OUT" 'pci: ["0000:01:00.0", "0000:01:00.1"]' "a ready-to-paste line for the whole group"
run hutch pci list 0000:01:00.1
contains "$OUT" 'pci: ["0000:01:00.0", "0000:01:00.1"]' "the same line from the audio function"

# A busy NVIDIA: refused, and not one byte written anywhere.
run hutch pci mode 0000:01:00.0 vfio
is "$RC" 1 "a busy NVIDIA is refused"
contains "$ERR" "process 4242 (python3) has /dev/nvidia0 open" "the error names the holder"
contains "$ERR" "nothing was changed" "and says nothing changed"
written=$(find "$F/sys" -type f \( -name unbind -o -name drivers_probe \) -size +0 | wc -l)
is "$written" 0 "no unbind or drivers_probe was written"
is "$(cat "$F/sys/bus/pci/devices/0000:01:00.0/driver_override")" "(null)" "driver_override untouched"

touch "$T/stamp"
sleep 1
# A task stuck in nv_pci_remove: recover says reboot and touches nothing.
rm -rf "$F/proc/4242"
put proc/77/stat '77 (bash) D 1 77 77 0'
put proc/77/wchan nv_pci_remove
run hutch pci status --json 01:00.0
is "$(json_get "$OUT" 'j["devices"][0]["wedged"]')" True "status flags the wedge"
run hutch pci recover 01:00.0
is "$RC" 1 "recover refuses on a wedged device"
contains "$ERR" "a reboot is needed: task 77 (bash) is stuck in nv_pci_remove" "and says a reboot is needed"
written=$(find "$F/sys" -type f \( -name unbind -o -name drivers_probe -o -name driver_override \) -newer "$T/stamp" | wc -l)
is "$written" 0 "nothing written"

# Poisoned (this boot): refused; the marker lives in hutch's data dir.
rm -rf "$F/proc/77"
mkdir -p "$HUTCH_HOME/data/pci"
printf '5d1c3c1e-0000-4000-8000-000000000001\nunbind stalled\n' >"$HUTCH_HOME/data/pci/0000:01:00.1.poison"
run hutch pci status 01:00.0
like "$OUT" 'poisoned: 0000:01:00.1: unbind stalled' "status flags the poison"
run hutch pci mode 01:00.0 native
is "$RC" 1 "a poisoned device is refused"
contains "$ERR" "poisoned until the host reboots" "and the error says so"

# Without the fake tree and without root: the sudo command, nothing else.
unset HUTCH_SYSFS_ROOT HUTCH_PROC_ROOT
if [ "$(id -u)" != 0 ]; then
	run hutch pci mode 0000:01:00.0 vfio
	is "$RC" 1 "pci mode without root fails"
	contains "$ERR" "needs root" "and says it needs root"
	contains "$ERR" "'sudo hutch pci mode 0000:01:00.0 vfio'" "and prints the sudo command"
fi
run hutch pci mode 0000:01:00.0 fast
is "$RC" 2 "a bad mode is a usage error"

done_testing
