#!/usr/bin/env bash
# once
# timeout: 1800
# An image VM (the Debian 12 cloud image, its agent a systemd service) on netvm links, as a netvm
# and as a client at once, with a 9p share: one cloud boot.
#
#   gw   micro, is_netvm, upstream QEMU user mode
#   mid  the cloud image: is_netvm and a client of gw; a read-only 9p share
#   c1   micro, a client of mid
#
# c1 fetches from an HTTP server on the host's loopback through mid and gw (two NATs), and asks DNS
# of mid, which forwards to gw. In mid the agent set up from MSG_NETCONF what micro's PID 1 sets up
# from the kernel command line: the NICs renamed by MAC (upstream, c1), their /31s, the default
# route, the one resolver (cloud-init's network set-up is off: no DHCP client, no other resolver),
# forwarding, and the NAT through the nft the seed carried (the image has no nftables). The share:
# Debian's cloud kernel has no 9p, so start warns and inspect says why, naming the kernel.
. "$(dirname "$0")/lib.sh"
exec </dev/null

here=$(cd "$(dirname "$0")" && pwd)
IMG=debian-12-hutch-amd64.qcow2
SECTIONS="boot links mid-config through-mid dns share"
BOOT_TIMEOUT=900 # a bound, not an expectation: under load 20 one boot took 7 min here
. "$here/cloud.sh"
cloud_fixture
cloud_serve "$T/requests.log"

mkdir -p "$T/docs"
echo from-the-host >"$T/docs/note.txt"
cat >"$T/hutch.yml" <<EOF
gw:
  source: {template: micro}
  memory: 256M
  network: {is_netvm: true}
mid:
  source:
    image: $base/files/$IMG
    checksum: sha256:$base/files/SHA256SUMS
  disk: 8G
  memory: 1G
  ssh: {key: generate}
  network: {is_netvm: true, netvm: gw}
  shares: {docs: {path: $T/docs, mount: /mnt/docs, readonly: true, via: 9p}}
c1:
  source: {template: micro}
  memory: 256M
  network: {netvm: mid}
EOF
for v in gw mid c1; do
	run hutch create "$v" --from "$T/hutch.yml"
	is "$RC" 0 "create $v"
done
run hutch inspect --render mid
contains "$OUT" "virtio-9p-pci" "mid's share is virtio-9p-pci (q35)"

# ==== boot ====
section "start gw, mid (the cloud image), c1"
run hutch start gw
is "$RC" 0 "start gw"
HUTCH_CMD_TIMEOUT=$((BOOT_TIMEOUT + 30)) run hutch start --wait agent --timeout "$BOOT_TIMEOUT" mid
is "$RC" 0 "start mid (the cloud image) exits 0"
if [ "$RC" -ne 0 ]; then
	diag "$(tail -n 40 "$HUTCH_HOME"/data/vms/mid/console.log 2>&1)"
	done_testing
	exit 1
fi
mid_err=$ERR
run hutch start c1
is "$RC" 0 "start c1"

links_up()
{
	local j
	j=$(hutch net ls --json) || return 1
	[ "$(json_get "$j" 'all(l["client_end"]=="up" and l["netvm_end"]=="up" for l in j["links"])')" = True ]
}
ok "net ls: both links come up" wait_until 90 links_up
run hutch net ls --json
MID_UP=$(json_get "$OUT" '[l["client_addr"] for l in j["links"] if l["client"]=="mid"][0]')
GW_MID=$(json_get "$OUT" '[l["netvm_addr"] for l in j["links"] if l["client"]=="mid"][0]')
C1=$(json_get "$OUT" '[l["client_addr"] for l in j["links"] if l["client"]=="c1"][0]')
MID_C1=$(json_get "$OUT" '[l["netvm_addr"] for l in j["links"] if l["client"]=="c1"][0]')
diag "mid $MID_UP -> gw $GW_MID; c1 $C1 -> mid $MID_C1"

# ==== mid's configuration, made by the agent as a service ====
section "mid's links"
unlike "$mid_err" "did not set up its netvm links" "start mid reports no network problem"
run hutch inspect --json mid
is "$(json_get "$OUT" 'j["net_setup"]["guest"]')" done "inspect: the guest set its links up"
run hutch inspect mid
contains "$OUT" "links:   set up in the guest" "inspect's text says so"
run hutch exec mid -- systemctl is-active hutch-agent.service
is "$OUT" active "mid's agent is the systemd service"
run hutch exec mid -- sh -c 'ip -o addr show dev upstream; ip -o addr show dev c1; ip route; cat /etc/resolv.conf'
contains "$OUT" "inet $MID_UP/31" "mid's link to gw is 'upstream' with its /31"
contains "$OUT" "inet $MID_C1/31" "mid's link to c1 is named c1, with its /31"
contains "$OUT" "default via $GW_MID dev upstream" "mid's default route is gw"
is "$(printf '%s\n' "$OUT" | grep -c nameserver)" 1 "mid has one resolver"
contains "$OUT" "nameserver $GW_MID" "and it is gw"
run hutch exec mid -- sh -c 'pgrep -c dhclient; cat /proc/sys/net/ipv4/ip_forward; ls /etc/network/interfaces.d | wc -l'
is "$(printf '%s\n' "$OUT" | sed -n 1p)" 0 "no DHCP client runs in mid"
is "$(printf '%s\n' "$OUT" | sed -n 2p)" 1 "mid forwards"
is "$(printf '%s\n' "$OUT" | sed -n 3p)" 0 "cloud-init wrote no interface configuration (the seed turned it off)"
run hutch exec mid -- nft list table ip hutch
contains "$OUT" "masquerade" "mid's NAT is in place (nft from the seed: $RC)"

# ==== c1 -> mid -> gw -> the host's loopback ====
section "HTTP through two netvms"
mkdir -p "$T/www"
echo "hello-through-mid" >"$T/www/hello.txt"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$T/www" && exec python3 -m http.server --bind 127.0.0.1 "$PORT" >"$T/http.log" 2>&1) &
HTTP_PID=$!
wait_until 10 python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT))"
get_hello() { hutch exec c1 -- sh -c "printf 'GET /hello.txt HTTP/1.0\\r\\n\\r\\n' | nc -w 10 10.0.2.2 $PORT" | tail -n 1; }
fetch_ok() { [ "$(get_hello 2>/dev/null)" = hello-through-mid ]; }
ok "c1 fetches from the host's loopback through mid and gw" wait_until 60 fetch_ok
contains "$(cat "$T/http.log")" "GET /hello.txt" "the host's server saw the request"
run hutch exec mid -- nft list chain ip hutch postrouting
masq=$(printf '%s\n' "$OUT" | sed -n 's/.*counter packets \([0-9]*\).*masquerade.*/\1/p')
ok "mid masqueraded it (counter: ${masq:-none})" test "${masq:-0}" -gt 0
run hutch exec c1 -- ping -c 1 -W 5 "$GW_MID"
is "$RC" 0 "c1 reaches gw's side of mid's link (routed by mid)"

section "DNS"
run hutch exec c1 -- nslookup example.invalid
contains "$OUT" "$MID_C1" "c1's DNS query is answered by mid's forwarder"

# ==== the share: Debian's cloud kernel has no 9p ====
section "share"
contains "$mid_err" "share 'docs' is not mounted at /mnt/docs" "start mid warns that the share is not mounted"
contains "$mid_err" "has no 9p file system" "and says the guest's kernel has no 9p"
run hutch inspect --json mid
err=$(json_get "$OUT" '[s.get("error","") for s in j["shares"] if s["tag"]=="docs"][0]')
contains "$err" "cloud-amd64" "inspect names the kernel: $err"

kill "$HTTP_PID" 2>/dev/null
for v in c1 mid gw; do
	run hutch stop "$v"
	is "$RC" 0 "stop $v"
done
done_testing
