#!/bin/bash
# bench/shares.sh (issue 11): share throughput in a micro VM, against the guest's own storage.
# The micro VM has no disk: its own storage is the initramfs root and /tmp, both RAM (tmpfs), so the
# peer is the guest's tmpfs: what the same dd does without crossing to the host.
#   9p         a read-write 9p share (mapped-xattr, msize 256 KiB): sequential write (conv=fsync)
#              and read of BENCH_SHARE_MB MiB, the page cache dropped before the read
#   virtiofs   the same over virtiofs, where virtiofsd is installed and user namespaces work
#   peer       the same dd on the guest's /tmp (tmpfs)
# Prints medians; asserts nothing.
#   BENCH_SHARE_MB  size of the file (default 64)
. "$(dirname "$0")/lib.sh"
bench_init "$@"

MB=${BENCH_SHARE_MB:-64}
N=$BENCH_RUNS
mkdir -p "$BENCH_TMP/s9p" "$BENCH_TMP/svfs"

vfsd=${HUTCH_VIRTIOFSD:-/usr/libexec/virtiofsd}
have_vfs=
if [ -x "$vfsd" ] && unshare -U true 2>/dev/null; then
	have_vfs=1
elif [ -x /usr/lib/qemu/virtiofsd ] && unshare --map-auto --map-root-user true 2>/dev/null; then
	have_vfs=1 # QEMU's C virtiofsd in a user namespace (uidmap): what hutch runs for via: virtiofs here
fi
{
	echo "b:"
	echo "  source: {template: micro}"
	echo "  memory: 1G"
	echo "  shares:"
	echo "    s9p: {path: $BENCH_TMP/s9p, mount: /mnt/9p, via: 9p}"
	[ -z "$have_vfs" ] || echo "    svfs: {path: $BENCH_TMP/svfs, mount: /mnt/vfs, via: virtiofs}"
} >"$BENCH_TMP/b.yml"
bench_hutch_or_die create b --from "$BENCH_TMP/b.yml"
bench_hutch_or_die start b

# guest_ms DIR write|read: one dd of MB MiB in DIR, in ms of guest uptime (/proc/uptime, 10 ms)
guest_ms() {
	local script
	if [ "$2" = write ]; then
		script="rm -f $1/f; a=\$(cut -d' ' -f1 /proc/uptime); dd if=/dev/zero of=$1/f bs=1M count=$MB conv=fsync 2>/dev/null; b=\$(cut -d' ' -f1 /proc/uptime)"
	else
		script="sync; echo 3 > /proc/sys/vm/drop_caches; a=\$(cut -d' ' -f1 /proc/uptime); dd if=$1/f of=/dev/null bs=1M 2>/dev/null; b=\$(cut -d' ' -f1 /proc/uptime)"
	fi
	"$HUTCH" exec b -- sh -c "$script; echo \$a \$b" 2>>"$BENCH_TMP/hutch.log" |
		awk '{ printf "%.0f\n", ($2 - $1) * 1000 }'
}

declare -A med
for target in tmp 9p vfs; do
	case $target in
	tmp) dir=/tmp ;;
	9p) dir=/mnt/9p ;;
	vfs) [ -n "$have_vfs" ] || continue; dir=/mnt/vfs ;;
	esac
	for op in write read; do
		s=()
		for _ in $(seq "$N"); do
			s+=("$(guest_ms "$dir" "$op")")
		done
		med[$target-$op]=$(bench_median "${s[@]}")
	done
done
bytes=$((MB * 1024 * 1024))

bench_title "Shares: throughput in a micro VM ($MB MiB sequential dd, median of $N, $(bench_accel))"
echo "The micro VM has no disk of its own: the peer is its /tmp (tmpfs), the same dd without leaving the guest."
echo
bench_header "transport" "write MB/s" "read MB/s" "write vs tmpfs" "read vs tmpfs"
for target in tmp 9p vfs; do
	[ -n "${med[$target-write]:-}" ] || continue
	w=$(bench_mbps "$bytes" "${med[$target-write]}")
	r=$(bench_mbps "$bytes" "${med[$target-read]}")
	tw=$(bench_mbps "$bytes" "${med[tmp-write]}")
	tr=$(bench_mbps "$bytes" "${med[tmp-read]}")
	name=$target
	[ "$target" != tmp ] || name="guest tmpfs (peer)"
	[ "$target" != 9p ] || name="9p share"
	[ "$target" != vfs ] || name="virtiofs share"
	bench_row "$name" "$w" "$r" "$(bench_ratio "$w" "$tw")" "$(bench_ratio "$r" "$tr")"
done
[ -n "$have_vfs" ] || echo "virtiofs: not measured: no virtiofsd at $vfsd, or no user namespaces (Debian 12 main has no virtiofsd package)."
echo
bench_load_note
bench_summary "share read (9p vs guest tmpfs)" "$(bench_mbps "$bytes" "${med[9p-read]}") MB/s" \
	"$(bench_mbps "$bytes" "${med[tmp-read]}") MB/s" "$(bench_ratio "$(bench_mbps "$bytes" "${med[9p-read]}")" "$(bench_mbps "$bytes" "${med[tmp-read]}")")" "-"
bench_hutch stop b
