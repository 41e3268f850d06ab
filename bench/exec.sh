#!/bin/bash
# bench/exec.sh (issue 3; issue 5 P3/P6): `hutch exec` round-trip latency in a running micro VM,
# and stdout/stdin throughput through the agent. Prints medians/p90; asserts nothing.
#   BENCH_EXEC_RUNS  latency samples (default 50)
#   BENCH_TP_RUNS    throughput samples (default 3: each 200 MiB stream takes seconds under TCG)
. "$(dirname "$0")/lib.sh"
bench_init "$@"

NE=${BENCH_EXEC_RUNS:-50}
NT=${BENCH_TP_RUNS:-3}
[ "$NT" -le "$BENCH_RUNS" ] || NT=$BENCH_RUNS
OUT_BYTES=209715200 # 200 MiB; micro's busybox head takes no "200M" suffix, so spell it out
IN_BYTES=52428800   # 50 MiB

bench_hutch_or_die create d --template micro

# Raw virtio-serial floor: no agent, no monitor, no CLI. The same kernel and hutch's initramfs boot
# a shell script as init that loads the same modules, then writes 200 MiB to the same
# org.hutch.agent.0 port with dd, NT times straight and NT times through a pipe (`dd | cat`, the
# hop the agent adds), timing each with the guest's clock (/proc/uptime, 10 ms steps). The host
# side is a unix socket drained by socat, as the monitor drains hutch's.
raw_floor() {
	local root=$BENCH_TMP/raw-root sock=$BENCH_TMP/raw-agent.sock log=$BENCH_TMP/raw-serial.log q i
	mkdir -p "$root"
	cat >"$root/floor-stream" <<EOF
#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
r=\$(uname -r)
for m in \$(cat /lib/modules/\$r/hutch.load); do insmod /lib/modules/\$r/\$m 2>/dev/null; done
port=
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
	for n in /sys/class/virtio-ports/*/name; do
		[ "\$(cat \$n 2>/dev/null)" = org.hutch.agent.0 ] && port=/dev/\$(basename \$(dirname \$n))
	done
	[ -n "\$port" ] && break
	sleep 0.1
done
echo "floor-stream: port \$port"
for i in \$(seq $NT); do
	read s x </proc/uptime; dd if=/dev/zero bs=64k count=3200 of=\$port 2>/dev/null; read e x </proc/uptime
	echo "floor-stream: direct \$s \$e"
	read s x </proc/uptime; dd if=/dev/zero bs=64k count=3200 2>/dev/null | cat >\$port; read e x </proc/uptime
	echo "floor-stream: pipe \$s \$e"
done
sleep 1
poweroff -f
EOF
	chmod 755 "$root/floor-stream"
	bench_cpio "$root" "$BENCH_TMP/raw-extra.cpio"
	cat "$FLOOR_HUTCH_INITRD" "$BENCH_TMP/raw-extra.cpio" >"$BENCH_TMP/raw-initramfs.cpio"
	local -a argv=()
	local a prev=""
	for a in "${FLOOR_ARGV[@]}"; do
		case "$prev" in
		-serial) a="file:$log" ;;
		-initrd) a=$BENCH_TMP/raw-initramfs.cpio ;;
		-append) a="$a rdinit=/floor-stream" ;;
		esac
		argv+=("$a")
		prev=$a
	done
	argv+=(-device virtio-serial-device,id=vser0
		-chardev "socket,id=agent,path=$sock,server=on,wait=off"
		-device virtserialport,bus=vser0.0,chardev=agent,name=org.hutch.agent.0)
	timeout 600 "${argv[@]}" >"$BENCH_TMP/raw-qemu.out" 2>&1 &
	q=$!
	BENCH_PIDS="$BENCH_PIDS $q"
	for ((i = 0; i < 1000; i++)); do
		[ -S "$sock" ] && break
		sleep 0.01
	done
	socat -u UNIX-CONNECT:"$sock" - | wc -c >"$BENCH_TMP/raw-count"
	wait "$q" || bench_die "raw virtio-serial floor: QEMU failed: $(cat "$BENCH_TMP/raw-qemu.out")"
	RAW=() RAWP=()
	while read -r kind s e; do
		case "$kind" in
		direct) RAW+=("$(awk -v s="$s" -v e="$e" 'BEGIN { printf "%.1f", (e - s) * 1000 }')") ;;
		pipe) RAWP+=("$(awk -v s="$s" -v e="$e" 'BEGIN { printf "%.1f", (e - s) * 1000 }')") ;;
		esac
	done < <(sed -n 's/^floor-stream: \(direct\|pipe\) /\1 /p' "$log")
	[ "${#RAW[@]}" = "$NT" ] || bench_die "raw virtio-serial floor: no timings (see $log)"
	RAW_BYTES=$(cat "$BENCH_TMP/raw-count")
}
if command -v socat >/dev/null; then
	bench_floor_setup d
	raw_floor
else
	bench_note "no socat: skipping the raw virtio-serial floor"
	RAW=() RAWP=()
fi

bench_hutch_or_die start d

lat() { # lat VAR N CMD...: N timed runs into array VAR
	local var=$1 n=$2 i
	shift 2
	local -a s=()
	for ((i = 0; i < n; i++)); do
		bench_time "$@" >/dev/null 2>>"$BENCH_TMP/hutch.log" || bench_die "failed: $*"
		s+=("$ELAPSED_MS")
	done
	eval "$var=(\"\${s[@]}\")"
}

# warm-up
for i in 1 2 3; do "$HUTCH" exec d -- true || bench_die "hutch exec d -- true failed"; done

lat EX "$NE" "$HUTCH" exec d -- true
lat VER "$NE" "$HUTCH" --version
lat TRUE "$NE" /bin/true
lat LIST "$NE" "$HUTCH" list

# stdout: stream to the host, count bytes on the host
stream() { # stream CMD...: sets ELAPSED_MS; checks the byte count
	local n
	bench_time sh -c '"$@" 2>>"'"$BENCH_TMP"'/hutch.log" | wc -c >"'"$BENCH_TMP"'/count"' sh "$@" ||
		bench_die "failed: $*"
	n=$(cat "$BENCH_TMP/count")
	[ "$n" = "$OUT_BYTES" ] || bench_die "$*: got $n bytes, want $OUT_BYTES"
}
HEAD=() HEADG=() DD=() DDG=()
for ((i = 0; i < NT; i++)); do
	stream "$HUTCH" exec d -- head -c "$OUT_BYTES" /dev/zero
	HEAD+=("$ELAPSED_MS")
	bench_time "$HUTCH" exec d -- sh -c "head -c $OUT_BYTES /dev/zero >/dev/null" || bench_die "guest head failed"
	HEADG+=("$ELAPSED_MS")
	stream "$HUTCH" exec d -- dd if=/dev/zero bs=64k count=3200
	DD+=("$ELAPSED_MS")
	bench_time "$HUTCH" exec d -- sh -c "dd if=/dev/zero bs=64k count=3200 >/dev/null 2>&1" ||
		bench_die "guest dd failed"
	DDG+=("$ELAPSED_MS")
done

# stdin: a 50 MiB random file through `cat` and back, sha256 compared
head -c "$IN_BYTES" /dev/urandom >"$BENCH_TMP/in.bin"
want=$(sha256sum <"$BENCH_TMP/in.bin" | cut -d' ' -f1)
CAT=() CATG=() match=yes
for ((i = 0; i < NT; i++)); do
	bench_time sh -c '"$1" exec d -- cat <"$2" | sha256sum >"$3"' sh "$HUTCH" "$BENCH_TMP/in.bin" "$BENCH_TMP/sum" ||
		bench_die "stdin round trip failed"
	CAT+=("$ELAPSED_MS")
	[ "$(cut -d' ' -f1 "$BENCH_TMP/sum")" = "$want" ] || match=NO
	bench_time "$HUTCH" exec d -- sh -c "dd if=/dev/zero bs=64k count=800 2>/dev/null | cat >/dev/null" ||
		bench_die "guest cat failed"
	CATG+=("$ELAPSED_MS")
done

ex=$(bench_median "${EX[@]}")
ver=$(bench_median "${VER[@]}")
bench_title "exec (issue 3, P3): \`hutch exec d -- true\` round trip in a running VM"
echo "$NE runs each; wall-clock ms. The floors are the parts \`hutch exec\` cannot avoid on the host."
echo "(P3's peer, \`ssh\` into the same VM, needs a cloud image with sshd: not available yet.)"
echo
bench_header "what" "p50 ms" "p90 ms" "ratio p50 to \`hutch --version\`"
bench_row "floor: \`/bin/true\` (fork + exec from bash)" "$(bench_median "${TRUE[@]}")" "$(bench_p90 "${TRUE[@]}")" "$(bench_ratio "$(bench_median "${TRUE[@]}")" "$ver")"
bench_row "floor: \`hutch --version\` (hutch process start)" "$ver" "$(bench_p90 "${VER[@]}")" "1.00"
bench_row "\`hutch list\` (store scan + lock probe, no monitor)" "$(bench_median "${LIST[@]}")" "$(bench_p90 "${LIST[@]}")" "$(bench_ratio "$(bench_median "${LIST[@]}")" "$ver")"
bench_row "**\`hutch exec d -- true\`**" "$ex" "$(bench_p90 "${EX[@]}")" "**$(bench_ratio "$ex" "$ver")**"
echo
echo "exec − \`hutch --version\` = $(bench_sub "$ex" "$ver") ms: monitor connect, EXEC to the agent over"
echo "virtio-serial, fork/exec of \`true\` in the TCG guest, EXIT back."
bench_summary "micro: \`hutch exec d -- true\` p50 / p90" "$ex / $(bench_p90 "${EX[@]}") ms" "\`hutch --version\` $ver ms (against ssh: the cloud rows)" "$(bench_ratio "$ex" "$ver")" "–"
echo

bench_title "exec throughput (issue 3, P6): stdout and stdin through the agent"
echo "$NT runs each (BENCH_TP_RUNS); MB = 10^6 bytes; 200 MiB per stdout stream. Floors: the same"
echo "200 MiB written by the guest straight to the same virtio-serial port, drained on the host by socat"
echo "(what the agent → monitor → CLI path adds), and the command with its output discarded in the guest."
echo "(P6's peer, \`ssh\`, needs a cloud image with sshd: not available yet.)"
echo
bench_header "stream" "median ms" "MB/s" "floor" "floor ms" "ratio to floor"
d=$(bench_median "${DD[@]}")
dg=$(bench_median "${DDG[@]}")
if [ "${#RAW[@]}" -gt 0 ]; then
	r=$(bench_median "${RAW[@]}")
	rp=$(bench_median "${RAWP[@]}")
	bench_row "raw virtio-serial: guest \`dd … of=PORT\`, no agent" "$r" "$(bench_mbps $OUT_BYTES "$r")" "–" "–" "–"
	bench_row "raw virtio-serial: guest \`dd … \| cat >PORT\`, no agent" "$rp" "$(bench_mbps $OUT_BYTES "$rp")" "–" "–" "–"
	bench_summary "micro: exec stdout throughput, dd 200 MiB" "$(bench_mbps $OUT_BYTES "$d") MB/s" "raw virtio-serial $(bench_mbps $OUT_BYTES "$rp") MB/s (against ssh: the cloud rows)" "$(bench_ratio "$d" "$rp") (time)" "–"
	bench_row "**stdout: \`hutch exec d -- dd if=/dev/zero bs=64k count=3200\`**" "$d" "**$(bench_mbps $OUT_BYTES "$d")**" "raw virtio-serial, piped" "$rp" "**$(bench_ratio "$d" "$rp")**"
fi
bench_row "stdout: \`hutch exec d -- dd …\` (same)" "$d" "$(bench_mbps $OUT_BYTES "$d")" "guest-only: \`dd … >/dev/null\`" "$dg" "$(bench_ratio "$d" "$dg")"
h=$(bench_median "${HEAD[@]}")
hg=$(bench_median "${HEADG[@]}")
bench_row "stdout: \`hutch exec d -- head -c 200MiB /dev/zero\`" "$h" "$(bench_mbps $OUT_BYTES "$h")" "guest-only: \`head … >/dev/null\`" "$hg" "$(bench_ratio "$h" "$hg")"
c=$(bench_median "${CAT[@]}")
cg=$(bench_median "${CATG[@]}")
bench_row "stdin → stdout: \`hutch exec d -- cat\` of 50 MiB random, sha256 match: $match" "$c" "$(bench_mbps $IN_BYTES "$c")" "guest-only: \`dd 50MiB \| cat >/dev/null\`" "$cg" "$(bench_ratio "$c" "$cg")"
echo
if [ "${#RAW[@]}" -gt 0 ]; then
	echo "Raw floor: guest-clock times (10 ms steps); the host drained $RAW_BYTES of $((2 * NT * OUT_BYTES)) bytes"
	echo "(the last KiB can be lost at the untimed poweroff)."
fi
echo "busybox \`head\` is itself slow in the guest: compare it with its own guest-only floor, not with \`dd\`."
echo
mon=$(bench_monitor_pid d)
echo "Monitor RSS after these streams: $(bench_rss_kb "$mon") KiB (QEMU: $(bench_rss_kb "$(bench_child_pid "$mon")") KiB)."
bench_load_note
