#!/bin/bash
# bench/virsh.sh (issue 5): libvirt as the peer. `virsh -c qemu:///session` define + start of an
# equivalent microvm domain (same kernel, hutch's initramfs, memory and command line; the agent's
# virtio-serial port as a unix channel) until the guest is up, then shutdown, against `hutch
# create` / `start` / `stop`. Prints medians; asserts nothing; skips with a reason if libvirt
# can't be used here.
#
# "Up" is judged alike on both sides: the guest agent's HELLO frame has reached the host. For
# libvirt the bench connects to the channel socket and waits for the first bytes (the agent can't
# send before a host peer connects). "Stopped" means QEMU has exited: hutch stop returns after the
# monitor has reaped QEMU; for libvirt the bench polls QEMU's pid, then checks `domstate`.
. "$(dirname "$0")/lib.sh"
bench_init "$@"

N=$BENCH_RUNS
URI=qemu:///session
DOM=hutch-bench

skip() { bench_skip "virsh (issue 5): libvirt \`qemu:///session\` vs hutch" "libvirt comparison" "$*"; }

command -v virsh >/dev/null || skip "virsh is not installed (apt-get install libvirt-clients libvirt-daemon-driver-qemu)"
command -v socat >/dev/null || skip "socat is not installed (needed to read the agent channel)"

# A private libvirt session: its own config, cache and runtime dirs, so it neither sees nor touches
# the user's own domains, and it goes away with HUTCH_HOME.
LV=$BENCH_TMP/lv
mkdir -p "$LV/config" "$LV/cache" "$LV/data" "$LV/run"
chmod 700 "$LV/run"
export XDG_CONFIG_HOME=$LV/config XDG_CACHE_HOME=$LV/cache XDG_DATA_HOME=$LV/data XDG_RUNTIME_DIR=$LV/run
V() { virsh -q -c "$URI" "$@"; }
BENCH_CLEANUP='virsh -c "$URI" destroy "$DOM"; virsh -c "$URI" undefine "$DOM";
	[ -s "$LV/run/libvirt/libvirtd.pid" ] && kill "$(cat "$LV/run/libvirt/libvirtd.pid")"'
if ! why=$(timeout 60 virsh -c "$URI" uri 2>&1); then
	skip "cannot connect to $URI: $(echo "$why" | head -n1)"
fi
if ! V domcapabilities --virttype qemu --machine microvm >/dev/null 2>&1; then
	skip "$URI offers no QEMU microvm machine"
fi

bench_hutch_or_die create d --template micro
bench_render d
kernel=$(bench_render_opt -kernel)
initrd=$(bench_render_opt -initrd)
append=$(bench_render_opt -append)
mem=$(bench_render_opt -m)
cpus=$(bench_render_opt -smp)
case "$mem" in
*M) mem_mib=${mem%M} ;;
*G) mem_mib=$((${mem%G} * 1024)) ;;
*) bench_die "unexpected -m $mem" ;;
esac
AGENT_SOCK=$LV/agent.sock
SERIAL=$LV/serial.log
XML=$LV/domain.xml
xml_escape() { sed 's/&/\&amp;/g; s/</\&lt;/g; s/>/\&gt;/g'; }
cat >"$XML" <<EOF
<domain type='qemu'>
  <name>$DOM</name>
  <memory unit='MiB'>$mem_mib</memory>
  <vcpu>$cpus</vcpu>
  <os>
    <type arch='x86_64' machine='microvm'>hvm</type>
    <kernel>$(echo "$kernel" | xml_escape)</kernel>
    <initrd>$(echo "$initrd" | xml_escape)</initrd>
    <cmdline>$(echo "$append" | xml_escape)</cmdline>
  </os>
  <features><acpi/></features>
  <cpu mode='maximum'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <serial type='file'><source path='$SERIAL'/><target port='0'/></serial>
    <controller type='virtio-serial' index='0'><address type='virtio-mmio'/></controller>
    <channel type='unix'>
      <source mode='bind' path='$AGENT_SOCK'/>
      <target type='virtio' name='org.hutch.agent.0'/>
    </channel>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
EOF

FIFO=$LV/agent.fifo
HELLO=$LV/hello.bin
mkfifo "$FIFO"

# lv_start: virsh start, then wait for the agent's first bytes. Sets ELAPSED_MS.
lv_start() {
	local t0 i
	rm -f "$HELLO"
	bench_now
	t0=$NOW_US
	V start "$DOM" >/dev/null || bench_die "virsh start failed: $(tail -n 5 "$LV/cache/libvirt/qemu/log/$DOM.log")"
	exec 7<>"$FIFO"
	socat UNIX-CONNECT:"$AGENT_SOCK" STDIO <"$FIFO" >"$HELLO" 2>>"$LV/socat.err" &
	SOCAT=$!
	for ((i = 0; i < 12000; i++)); do
		[ -s "$HELLO" ] && break
		sleep 0.01
	done
	bench_now
	[ -s "$HELLO" ] || bench_die "libvirt guest: no agent HELLO within 120 s (see $SERIAL)"
	ELAPSED_MS=$(bench_us_to_ms $((NOW_US - t0)))
	QPID=$(cat "$XDG_RUNTIME_DIR/libvirt/qemu/run/$DOM.pid")
}

# lv_poweroff: the agent's POWEROFF frame (len 0, type 13, channel 0), as `hutch stop` sends;
# done when QEMU is gone. Sets ELAPSED_MS.
lv_poweroff() {
	local t0 i
	bench_now
	t0=$NOW_US
	printf '\0\0\0\0\015\0\0\0\0' >&7
	for ((i = 0; i < 6000; i++)); do
		kill -0 "$QPID" 2>/dev/null || break
		sleep 0.01
	done
	bench_now
	ELAPSED_MS=$(bench_us_to_ms $((NOW_US - t0)))
	lv_settle
}

lv_settle() {
	local i
	exec 7>&-
	wait "$SOCAT" 2>/dev/null
	for ((i = 0; i < 100; i++)); do
		[ "$(V domstate "$DOM")" = "shut off" ] && return 0
		sleep 0.1
	done
	bench_die "libvirt domain did not reach 'shut off'"
}

h_time() { # h_time CMD...: timed hutch call into ELAPSED_MS
	bench_time "$HUTCH" "$@" >>"$BENCH_TMP/hutch.log" 2>&1 || bench_die "hutch $* failed$(tail -n 5 "$BENCH_TMP/hutch.log")"
}

# warm-up, not counted
V define "$XML" >/dev/null || bench_die "virsh define failed"
lv_start
lv_poweroff
V undefine "$DOM" >/dev/null
h_time start d
h_time stop d

LDEF=() LUP=() LOFF=() LDES=() LUNDEF=() HCRE=() HUP=() HOFF=() HKILL=() HDES=()
for ((i = 0; i < N; i++)); do
	bench_time V define "$XML" >/dev/null || bench_die "virsh define failed"
	LDEF+=("$ELAPSED_MS")
	lv_start
	LUP+=("$ELAPSED_MS")
	lv_poweroff
	LOFF+=("$ELAPSED_MS")
	lv_start
	LUP+=("$ELAPSED_MS")
	bench_time V destroy "$DOM" >/dev/null || bench_die "virsh destroy failed"
	LDES+=("$ELAPSED_MS")
	lv_settle
	bench_time V undefine "$DOM" >/dev/null || bench_die "virsh undefine failed"
	LUNDEF+=("$ELAPSED_MS")

	h_time create "h$i" --template micro
	HCRE+=("$ELAPSED_MS")
	h_time start "h$i"
	HUP+=("$ELAPSED_MS")
	h_time stop "h$i"
	HOFF+=("$ELAPSED_MS")
	h_time start "h$i"
	HUP+=("$ELAPSED_MS")
	h_time stop --force "h$i"
	HKILL+=("$ELAPSED_MS")
	h_time destroy "h$i"
	HDES+=("$ELAPSED_MS")
done

row() { # row LABEL HUTCH_SAMPLES_VAR LIBVIRT_SAMPLES_VAR
	local -n hs=$2 ls=$3
	local h l
	h=$(bench_median "${hs[@]}")
	l=$(bench_median "${ls[@]}")
	bench_row "$1" "$h" "$l" "$(bench_ratio "$h" "$l")"
}
tot() { # tot OUTVAR VAR...: per-run sums of medians, as one value
	local out=$1 s=0 v m
	shift
	for v in "$@"; do
		eval "m=\$(bench_median \"\${$v[@]}\")"
		s=$(awk -v s="$s" -v m="$m" 'BEGIN { printf "%.1f", s + m }')
	done
	eval "$out=$s"
}
tot HT HCRE HUP HOFF HDES
tot LT LDEF LUP LOFF LUNDEF

bench_title "virsh (issue 5): libvirt \`qemu:///session\` vs hutch, same micro guest"
echo "libvirt $(virsh --version), $URI (private session daemon). Same kernel, initramfs, memory,"
echo "vCPUs and command line; libvirt domain = microvm + ACPI, serial to a file, the agent's"
echo "virtio-serial port as a unix channel, nothing else. $N runs; each run boots each side twice"
echo "(graceful stop, then forced stop), so the start row has $((2 * N)) samples. Wall-clock ms, medians."
echo
bench_header "step" "hutch" "libvirt" "ratio hutch / libvirt"
row "define: \`hutch create\` / \`virsh define\`" HCRE LDEF
row "**start until agent HELLO**: \`hutch start\` / \`virsh start\` + wait" HUP LUP
row "**graceful stop** (agent POWEROFF → QEMU gone): \`hutch stop\` / frame + wait" HOFF LOFF
row "forced stop: \`hutch stop --force\` / \`virsh destroy\`" HKILL LDES
row "remove: \`hutch destroy\` / \`virsh undefine\`" HDES LUNDEF
bench_row "**total** define + start + graceful stop + remove" "$HT" "$LT" "**$(bench_ratio "$HT" "$LT")**"
bench_summary "libvirt: start until HELLO" "$(bench_median "${HUP[@]}") ms" "virsh $(bench_median "${LUP[@]}") ms" "$(bench_ratio "$(bench_median "${HUP[@]}")" "$(bench_median "${LUP[@]}")")" "–"
bench_summary "libvirt: define + start + stop + remove" "$HT ms" "virsh $LT ms" "$(bench_ratio "$HT" "$LT")" "–"
echo
bench_load_note
