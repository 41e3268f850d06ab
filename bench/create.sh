#!/bin/bash
# bench/create.sh: `hutch create` of a micro VM, and the template check every start runs, with the
# cache cold and warm. P4 proper (a VM from a cached 3 GiB against a 100 MiB cloud image) is in
# bench/cloud.sh. Prints medians; asserts nothing.
. "$(dirname "$0")/lib.sh"
bench_init "$@"

N=$BENCH_RUNS
[ "$N" -ge 10 ] || N=10 # milliseconds each: take at least 10

CRE=() COLD=() WARM=() VER=() DES=()
"$HUTCH" --version >/dev/null
for ((i = 0; i < N; i++)); do
	bench_time "$HUTCH" create "c$i" --template micro >>"$BENCH_TMP/hutch.log" 2>&1 || bench_die "create c$i failed"
	CRE+=("$ELAPSED_MS")
	# create only writes the spec; the template is built on first use (start, or a render)
	rm -rf "$HUTCH_HOME/cache"
	bench_time "$HUTCH" inspect --render "c$i" >/dev/null 2>>"$BENCH_TMP/hutch.log" || bench_die "render c$i failed"
	COLD+=("$ELAPSED_MS")
	bench_time "$HUTCH" inspect --render "c$i" >/dev/null 2>>"$BENCH_TMP/hutch.log" || bench_die "render c$i failed"
	WARM+=("$ELAPSED_MS")
	bench_time "$HUTCH" --version >/dev/null
	VER+=("$ELAPSED_MS")
	bench_time "$HUTCH" destroy "c$i" >>"$BENCH_TMP/hutch.log" 2>&1 || bench_die "destroy c$i failed"
	DES+=("$ELAPSED_MS")
done
ver=$(bench_median "${VER[@]}")
initrd=$(find "$HUTCH_HOME/cache" -name 'initramfs*' -type f | head -n1)

bench_title "create (micro): \`hutch create --template micro\`"
echo "$N runs each; wall-clock ms. \`create\` of a micro VM writes its spec; the micro template (an"
echo "initramfs of $(($(stat -c %s "$initrd" 2>/dev/null || echo 0) / 1024)) KiB: agent, busybox, virtio modules) is built on first use and cached."
echo "\`inspect --render\` runs the same template check and argv build that every \`start\` runs."
echo
bench_header "what" "median ms" "p90 ms" "ratio to \`hutch --version\`"
bench_row "floor: \`hutch --version\`" "$ver" "$(bench_p90 "${VER[@]}")" "1.00"
bench_row "**\`hutch create --template micro\`**" "$(bench_median "${CRE[@]}")" "$(bench_p90 "${CRE[@]}")" "**$(bench_ratio "$(bench_median "${CRE[@]}")" "$ver")**"
bench_row "\`hutch inspect --render\`, template cached (check only)" "$(bench_median "${WARM[@]}")" "$(bench_p90 "${WARM[@]}")" "$(bench_ratio "$(bench_median "${WARM[@]}")" "$ver")"
bench_row "\`hutch inspect --render\`, cache removed (builds the initramfs)" "$(bench_median "${COLD[@]}")" "$(bench_p90 "${COLD[@]}")" "$(bench_ratio "$(bench_median "${COLD[@]}")" "$ver")"
bench_row "\`hutch destroy\` (stopped VM)" "$(bench_median "${DES[@]}")" "$(bench_p90 "${DES[@]}")" "$(bench_ratio "$(bench_median "${DES[@]}")" "$ver")"
bench_summary "\`hutch create --template micro\`" "$(bench_median "${CRE[@]}") ms" "\`hutch --version\` $ver ms" "$(bench_ratio "$(bench_median "${CRE[@]}")" "$ver")" "–"
echo
echo "Image VMs (P4, a cached 3 GiB against a 100 MiB base): see bench/cloud.sh."
