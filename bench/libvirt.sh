#!/bin/bash
# bench/libvirt.sh (issue 10, P9): hutch's libvirt backend against plain virsh with the very domain
# XML hutch renders, and against hutch's own qemu backend, in one run, interleaved.
#   - hutch libvirt: `hutch start` (until the agent's HELLO) then `hutch stop`;
#   - virsh: `virsh create` of `hutch inspect --render`'s XML (renamed, the agent channel given a
#     socket path), then wait for the agent's HELLO on that socket; POWEROFF frame, wait shut off;
#   - hutch qemu: `hutch start` / `hutch stop` of the same micro VM on the embedded backend.
# Goals (issue 10): libvirt backend <= 1.0x virsh, and <= 1.15x the qemu backend. Prints medians and
# ratios; asserts nothing; skips with a reason if libvirt can't be used here.
. "$(dirname "$0")/lib.sh"
bench_init "$@"

N=$BENCH_RUNS
URI=qemu:///session
DOM=hutch-benchv

skip() { bench_skip "libvirt backend (issue 10): hutch on libvirt vs virsh vs hutch on qemu" "libvirt backend" "$*"; }
command -v virsh >/dev/null || skip "virsh is not installed (apt-get install libvirt-clients libvirt-daemon-driver-qemu)"
command -v socat >/dev/null || skip "socat is not installed (needed to read the agent channel)"

# A private libvirt session (its own config, cache, runtime dirs); hutch's libvirt client finds the
# same one through the same environment.
# short: libvirt puts the channel sockets under XDG_CONFIG_HOME, and sun_path is 108 bytes
LV=$(mktemp -d /tmp/hlv.XXXXXX) || bench_die "mktemp failed"
mkdir -p "$LV/config" "$LV/cache" "$LV/data" "$LV/run"
chmod 700 "$LV/run"
export XDG_CONFIG_HOME=$LV/config XDG_CACHE_HOME=$LV/cache XDG_DATA_HOME=$LV/data XDG_RUNTIME_DIR=$LV/run
V() { virsh -q -c "$URI" "$@"; }
BENCH_CLEANUP='"$HUTCH" destroy --force lvb >/dev/null 2>&1; virsh -c "$URI" destroy "$DOM" >/dev/null 2>&1;
	[ -s "$LV/run/libvirt/libvirtd.pid" ] && kill "$(cat "$LV/run/libvirt/libvirtd.pid")"; rm -rf "$LV"'
if ! why=$(timeout 60 virsh -c "$URI" uri 2>&1); then
	skip "cannot connect to $URI: $(echo "$why" | head -n1)"
fi

bench_hutch_or_die create lvb --template micro --backend libvirt
bench_hutch_or_die create qmb --template micro
XML=$LV/domain.xml
AGENT_SOCK=$LV/agent.sock
# hutch's own render; only the name, the metadata (it is hutch's mark) and the channel's path differ
"$HUTCH" inspect --render lvb |
	sed -e "s|<name>hutch-lvb</name>|<name>$DOM</name>|" \
		-e '/<metadata>/,/<\/metadata>/d' \
		-e "s|<source mode=\"bind\"/>|<source mode=\"bind\" path=\"$AGENT_SOCK\"/>|" \
		-e "s|/vms/lvb/console.log|/vms/lvb/console-virsh.log|" >"$XML"
grep -q "$AGENT_SOCK" "$XML" || bench_die "could not place the agent channel in the rendered XML"

FIFO=$LV/agent.fifo
HELLO=$LV/hello.bin
mkfifo "$FIFO"

# lv_start: virsh create (transient, like a define + start), then wait for the agent's first bytes.
lv_start() {
	local t0 i
	rm -f "$HELLO" "$AGENT_SOCK"
	bench_now
	t0=$NOW_US
	V create "$XML" >/dev/null || bench_die "virsh create failed: $(tail -n 5 "$LV/cache/libvirt/qemu/log/$DOM.log")"
	exec 7<>"$FIFO"
	for ((i = 0; i < 1000; i++)); do
		[ -S "$AGENT_SOCK" ] && break
		sleep 0.01
	done
	socat UNIX-CONNECT:"$AGENT_SOCK" STDIO <"$FIFO" >"$HELLO" 2>>"$LV/socat.err" &
	SOCAT=$!
	for ((i = 0; i < 30000; i++)); do
		[ -s "$HELLO" ] && break
		sleep 0.01
	done
	bench_now
	[ -s "$HELLO" ] || bench_die "virsh guest: no agent HELLO within 300 s"
	ELAPSED_MS=$(bench_us_to_ms $((NOW_US - t0)))
}

# lv_stop: the agent's POWEROFF frame (len 0, type 13, channel 0), as hutch stop sends; done when
# libvirt says the transient domain is gone.
lv_stop() {
	local t0 i
	bench_now
	t0=$NOW_US
	# the host's HELLO answer first (u32 version 1, caps 0, empty release): until then the agent
	# ignores everything but HELLO
	printf '\014\0\0\0\001\0\0\0\0\001\0\0\0\0\0\0\0\0\0\0\0' >&7
	printf '\0\0\0\0\015\0\0\0\0' >&7
	for ((i = 0; i < 6000; i++)); do
		V domstate "$DOM" >/dev/null 2>&1 || break
		sleep 0.01
	done
	bench_now
	ELAPSED_MS=$(bench_us_to_ms $((NOW_US - t0)))
	exec 7>&-
	wait "$SOCAT" 2>/dev/null
}

h_time() {
	bench_time "$HUTCH" "$@" >>"$BENCH_TMP/hutch.log" 2>&1 || bench_die "hutch $* failed$(tail -n 5 "$BENCH_TMP/hutch.log")"
}

# warm-up, not counted (the session daemon, the micro template, page cache)
h_time start lvb --timeout 300
h_time stop lvb
lv_start
lv_stop
h_time start qmb --timeout 300
h_time stop qmb

HLUP=() HLOFF=() VUP=() VOFF=() HQUP=() HQOFF=()
for ((i = 0; i < N; i++)); do
	h_time start lvb --timeout 300
	HLUP+=("$ELAPSED_MS")
	h_time stop lvb
	HLOFF+=("$ELAPSED_MS")
	lv_start
	VUP+=("$ELAPSED_MS")
	lv_stop
	VOFF+=("$ELAPSED_MS")
	h_time start qmb --timeout 300
	HQUP+=("$ELAPSED_MS")
	h_time stop qmb
	HQOFF+=("$ELAPSED_MS")
done

m() { local -n a=$1; bench_median "${a[@]}"; }
sum() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a + b }'; }
hlu=$(m HLUP) hlo=$(m HLOFF) vu=$(m VUP) vo=$(m VOFF) hqu=$(m HQUP) hqo=$(m HQOFF)
hl=$(sum "$hlu" "$hlo") v=$(sum "$vu" "$vo") hq=$(sum "$hqu" "$hqo")

bench_title "libvirt backend (issue 10): hutch on libvirt vs virsh (same XML) vs hutch on qemu"
echo "libvirt $(virsh --version), $URI (private session daemon), the micro template under $(bench_accel 2>/dev/null || echo tcg)."
echo "virsh runs the XML \`hutch inspect --render\` prints (renamed, the agent channel at a fixed path)."
echo "$N runs, interleaved. Wall-clock ms, medians. Goals: libvirt/virsh <= 1.0, libvirt/qemu <= 1.15."
echo
bench_header "step" "hutch libvirt" "virsh" "hutch qemu" "libvirt / virsh" "libvirt / qemu"
bench_row "start until agent HELLO" "$hlu" "$vu" "$hqu" "$(bench_ratio "$hlu" "$vu")" "$(bench_ratio "$hlu" "$hqu")"
bench_row "stop (agent POWEROFF until gone)" "$hlo" "$vo" "$hqo" "$(bench_ratio "$hlo" "$vo")" "$(bench_ratio "$hlo" "$hqo")"
bench_row "**start + stop**" "$hl" "$v" "$hq" "**$(bench_ratio "$hl" "$v")**" "**$(bench_ratio "$hl" "$hq")**"
bench_summary "libvirt backend: start+stop" "$hl ms" "virsh $v ms, qemu $hq ms" "$(bench_ratio "$hl" "$v") / $(bench_ratio "$hl" "$hq")" "–"
echo
bench_load_note
