#!/bin/bash
# bench/netvm.sh (issue 11): the ping latency client -> netvm -> host against the netvm's own ping
# to the host (QEMU user mode, one hop less). Both micro VMs under the same conditions; the client's
# packets cross the -netdev stream link (unix socket), the netvm's forwarding and NAT, then slirp.
# Prints medians of per-packet round-trip times; asserts nothing.
#   BENCH_PINGS  pings per sample (default 20, 0.2 s apart); BENCH_RUNS samples
. "$(dirname "$0")/lib.sh"
bench_init "$@"

PINGS=${BENCH_PINGS:-20}
cat >"$BENCH_TMP/net.yml" <<'EOF'
gw:
  source: {template: micro}
  memory: 256M
  network: {is_netvm: true}
c1:
  source: {template: micro}
  memory: 256M
  network: {netvm: gw}
EOF
bench_hutch_or_die create gw --from "$BENCH_TMP/net.yml"
bench_hutch_or_die create c1 --from "$BENCH_TMP/net.yml"
bench_hutch_or_die start c1 # starts gw first

# rtt VM: the median round trip (microseconds: slirp answers its own address in well under 0.1 ms)
# of PINGS pings from VM to the host (slirp's 10.0.2.2)
rtt() {
	"$HUTCH" exec "$1" -- ping -c "$PINGS" -i 0.2 -W 2 10.0.2.2 </dev/null 2>>"$BENCH_TMP/hutch.log" |
		sed -n 's/.*time=\([0-9.]*\) ms/\1/p' | sort -g | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] * 1000 }'
}

# warm both paths (ARP, conntrack) before measuring
rtt c1 >/dev/null
rtt gw >/dev/null
C=() G=()
for _ in $(seq "$BENCH_RUNS"); do
	C+=("$(rtt c1)")
	G+=("$(rtt gw)")
done
c=$(bench_median "${C[@]}")
g=$(bench_median "${G[@]}")

bench_title "netvm: ping latency client -> netvm -> host"
echo "Median of $BENCH_RUNS samples, each the median of $PINGS pings (TCG, $(nproc) CPUs)."
echo
bench_header "path" "median RTT (us)" "ratio"
bench_row "client -> netvm -> host (stream link, forward, NAT, slirp)" "$c" "$(bench_ratio "$c" "$g")"
bench_row "netvm -> host (slirp only; the peer)" "$g" "1.00"
echo
bench_load_note
bench_summary "netvm ping RTT" "$c us" "$g us (netvm direct)" "$(bench_ratio "$c" "$g")" "-"
