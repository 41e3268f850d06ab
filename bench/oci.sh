#!/bin/bash
# bench/oci.sh: time to disk for a ~300 MiB container image (issue 15). hutch: `hutch create --oci`
# with the cache empty (verify, unpack, mkfs.ext4 -d + the debugfs ownership pass, overlay) and
# with the image cached (overlay only). Peer: the same by hand, `umoci unpack --rootless` plus
# `mkfs.ext4 -d` (which as a user gives every file the user's ownership: quicker, and wrong for a
# root filesystem). Prints medians; asserts nothing. BENCH_OCI_MIB sets the payload (default 300).
. "$(dirname "$0")/lib.sh"
bench_init "$@"

command -v umoci >/dev/null || bench_die "umoci not found (apt-get install umoci)"
MKFS=$(PATH=$PATH:/usr/sbin:/sbin command -v mkfs.ext4) || bench_die "mkfs.ext4 not found (e2fsprogs)"
MIB=${BENCH_OCI_MIB:-300}
N=$BENCH_RUNS

# The image: the tests' busybox base plus MIB MiB of files (half compressible text, half random).
gen=$BENCH_REPO/tests/integration/oci-image.py
[ -f "$gen" ] || gen=$BENCH_DIR/../tests/oci-image.py
python3 "$gen" --busybox-base "$BENCH_TMP/bb.tar" || bench_die "base image failed"
python3 - "$BENCH_TMP/bb.tar" "$BENCH_TMP/base.tar" "$MIB" <<'EOF' || bench_die "payload failed"
import io, os, sys, tarfile
src, out, mib = sys.argv[1], sys.argv[2], int(sys.argv[3])
with tarfile.open(src) as s, tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
    for ti in s:
        t.addfile(ti, s.extractfile(ti) if ti.isreg() else None)
    n = mib * 4  # 256 KiB files
    for i in range(n):
        if i % 64 == 0:
            d = tarfile.TarInfo("usr/share/payload/%03d" % (i // 64)); d.type = tarfile.DIRTYPE; d.mode = 0o755
            t.addfile(d)
        data = os.urandom(256 * 1024) if i % 2 else (("line %d of a text file\n" % i) * 11000)[: 256 * 1024].encode()
        ti = tarfile.TarInfo("usr/share/payload/%03d/f%05d" % (i // 64, i)); ti.size = len(data); ti.mode = 0o644
        t.addfile(ti, io.BytesIO(data))
EOF
python3 "$gen" "$BENCH_TMP/base.tar" "$BENCH_TMP/img" --no-kernel >/dev/null || bench_die "image failed"
layout=$BENCH_TMP/img/layout
size_mib=$(du -sm "$layout" | awk '{print $1}')

FIRST=() CACHED=() PEER=() FIRST_CPU=() CACHED_CPU=() PEER_CPU=()
by_hand() {
	rm -rf "$BENCH_TMP/bundle" "$BENCH_TMP/hand.img"
	umoci unpack --rootless --image "$layout:test" "$BENCH_TMP/bundle" >/dev/null &&
		"$MKFS" -q -F -b 4096 -d "$BENCH_TMP/bundle/rootfs" "$BENCH_TMP/hand.img" $((MIB * 2 + 256))M
}
for ((i = 0; i < N; i++)); do
	rm -rf "$HUTCH_HOME/cache/oci"
	bench_time "$HUTCH" create "f$i" --oci "oci:$layout:test" >>"$BENCH_TMP/hutch.log" 2>&1 || bench_die "create f$i failed"
	FIRST+=("$ELAPSED_MS")
	FIRST_CPU+=("$CPU_MS")
	bench_time "$HUTCH" create "c$i" --oci "oci:$layout:test" >>"$BENCH_TMP/hutch.log" 2>&1 || bench_die "create c$i failed"
	CACHED+=("$ELAPSED_MS")
	CACHED_CPU+=("$CPU_MS")
	bench_hutch destroy "f$i"
	bench_hutch destroy "c$i"
	bench_time by_hand >>"$BENCH_TMP/hand.log" 2>&1 || bench_die "umoci + mkfs failed: $(tail -3 "$BENCH_TMP/hand.log")"
	PEER+=("$ELAPSED_MS")
	PEER_CPU+=("$CPU_MS")
done
peer=$(bench_median "${PEER[@]}")
first=$(bench_median "${FIRST[@]}")
cached=$(bench_median "${CACHED[@]}")

bench_title "container image to disk: \`hutch create --oci\` (${MIB} MiB of files; ${size_mib} MiB OCI layout, 2 gzip layers)"
echo "$N runs each, interleaved; wall-clock ms (CPU ms of the command and its children beside it)."
echo "The peer is the same job by hand: \`umoci unpack --rootless\` then \`mkfs.ext4 -d\`; as a user that"
echo "gives every file the user's ownership (no root-owned setuid files), which hutch's debugfs pass fixes."
echo "Wall time moves with the host's load (see the note below); CPU time much less."
echo
bench_header "what" "median ms" "CPU ms" "ratio to by hand"
bench_row "peer: \`umoci unpack --rootless\` + \`mkfs.ext4 -d\`" "$peer" "$(bench_median "${PEER_CPU[@]}")" "1.00"
bench_row "**\`hutch create --oci\`, first (verify, unpack, mkfs, ownership, overlay)**" "$first" "$(bench_median "${FIRST_CPU[@]}")" "**$(bench_ratio "$first" "$peer")**"
bench_row "\`hutch create --oci\`, cached (manifest digest hit: overlay only)" "$cached" "$(bench_median "${CACHED_CPU[@]}")" "$(bench_ratio "$cached" "$peer")"
bench_load_note
bench_summary "\`hutch create --oci\` (${MIB} MiB image), first / cached" "$first / $cached ms" "umoci unpack + mkfs.ext4 -d $peer ms" "$(bench_ratio "$first" "$peer") / $(bench_ratio "$cached" "$peer")" "–"
