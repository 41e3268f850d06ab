#!/usr/bin/env bash
# once
# timeout: 1500
# A netvm (upstream: QEMU user mode) and two clients, all micro VMs, plus a VM with network: none:
# client1 fetches from an HTTP server on the host's loopback through the netvm (slirp's 10.0.2.2 is
# the host's 127.0.0.1 from the netvm) and the netvm's masquerade rule counts it; DNS goes to the
# netvm; client1 cannot reach client2; the none VM has only lo and no route; a netvm restart and a
# client restart both heal; `net ls` shows the links and their ends.
. "$(dirname "$0")/lib.sh"
exec </dev/null

cat >"$T/hutch.yml" <<'EOF'
gw:
  source: {template: micro}
  memory: 256M
  network: {is_netvm: true}
c1:
  source: {template: micro}
  memory: 256M
  network: {netvm: gw}
c2:
  source: {template: micro}
  memory: 256M
  network: {mode: netvm, netvm: gw, netvm_subnet: 10.200.9.4/31}
off:
  source: {template: micro}
  memory: 256M
  network: {mode: none}
EOF
for v in gw c1 c2 off; do
	run hutch create "$v" --from "$T/hutch.yml"
	is "$RC" 0 "create $v"
done

# ---- the plan, before anything runs ----
run hutch net ls --json
is "$RC" 0 "net ls --json with nothing running"
is "$(json_get "$OUT" 'len(j["links"])')" 2 "two links"
is "$(json_get "$OUT" '[l["client_addr"] for l in j["links"] if l["client"]=="c2"][0]')" 10.200.9.4 \
	"c2's pinned /31: the client has the even address"
is "$(json_get "$OUT" '[l["netvm_addr"] for l in j["links"] if l["client"]=="c2"][0]')" 10.200.9.5 \
	"and the netvm the odd one"
is "$(json_get "$OUT" '",".join(sorted(set(l["client_end"]+l["netvm_end"] for l in j["links"])))')" stoppedstopped \
	"every end is stopped"
C1=$(json_get "$OUT" '[l["client_addr"] for l in j["links"] if l["client"]=="c1"][0]')
GW1=$(json_get "$OUT" '[l["netvm_addr"] for l in j["links"] if l["client"]=="c1"][0]')

# ---- starting a client starts its netvm first ----
run hutch start c1
is "$RC" 0 "start c1"
run hutch list --json
is "$(json_get "$OUT" '[v["state"] for v in j if v["name"]=="gw"][0]')" running \
	"starting c1 started its netvm gw"
run hutch start c2
is "$RC" 0 "start c2"
run hutch start off
is "$RC" 0 "start off"

links_up()
{
	local j
	j=$(hutch net ls --json) || return 1
	[ "$(json_get "$j" 'all(l["client_end"]=="up" and l["netvm_end"]=="up" for l in j["links"])')" = True ]
}
ok "net ls: both ends of both links come up" wait_until 60 links_up

# ---- the guests' configuration ----
run hutch exec c1 -- sh -c 'ip -o addr show dev upstream; ip route; cat /etc/resolv.conf'
contains "$OUT" "inet $C1/31" "c1's interface is 'upstream' with its /31"
contains "$OUT" "default via $GW1 dev upstream" "c1's default route is the netvm"
is "$(printf '%s\n' "$OUT" | grep -c nameserver)" 1 "c1 has one resolver"
contains "$OUT" "nameserver $GW1" "and it is the netvm"
run hutch exec gw -- sh -c 'ip -o link; cat /proc/sys/net/ipv4/ip_forward'
contains "$OUT" ": c1:" "the netvm's interface for c1 is named c1"
contains "$OUT" ": c2:" "and the one for c2 c2"
contains "$OUT" ": upstream:" "the netvm's own uplink is upstream"

# ---- HTTP through the netvm to the host's loopback ----
mkdir -p "$T/www"
echo "hello-through-the-netvm" >"$T/www/hello.txt"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$T/www" && exec python3 -m http.server --bind 127.0.0.1 "$PORT" >"$T/http.log" 2>&1) &
HTTP_PID=$!
# (run.sh's sweep ends it if this test dies: it carries our HUTCH_HOME)
wait_until 10 python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT))"
# busybox's nc, not its wget: the static wget crashes in glibc's NSS (getservbyname) without libs
get_hello() { hutch exec c1 -- sh -c "printf 'GET /hello.txt HTTP/1.0\\r\\n\\r\\n' | nc -w 10 10.0.2.2 $PORT" | tail -n 1; }
run get_hello
is "$OUT" "hello-through-the-netvm" "c1 fetches from the host's loopback through the netvm"
contains "$(cat "$T/http.log")" "GET /hello.txt" "the host's server saw the request"
run hutch exec gw -- nft list chain ip hutch postrouting
masq=$(printf '%s\n' "$OUT" | sed -n 's/.*counter packets \([0-9]*\).*masquerade.*/\1/p')
ok "the netvm masqueraded it (masquerade counter: ${masq:-none})" test "${masq:-0}" -gt 0
run hutch exec c1 -- nslookup example.invalid
contains "$OUT" "$GW1" "c1's DNS query is answered by the netvm"

# ---- isolation ----
run hutch exec c1 -- ping -c 2 -W 2 10.200.9.4
ok "c1 cannot reach c2 (ping exits $RC)" test "$RC" -ne 0
run hutch exec c2 -- sh -c 'setsid sh -c "while true; do nc -l -p 7000 </dev/null; done" </dev/null >/dev/null 2>&1 &'
run hutch exec gw -- nc -w 5 10.200.9.4 7000
is "$RC" 0 "c2 listens on 7000 (the netvm itself reaches it)"
run hutch exec c1 -- nc -w 5 10.200.9.4 7000
ok "c1 cannot open TCP to it (nc exits $RC)" test "$RC" -ne 0
run hutch exec off -- sh -c 'ip -o link | grep -v ": lo:" | wc -l; ip route | wc -l; ping -c 1 -W 2 10.0.2.2'
is "$(printf '%s\n' "$OUT" | sed -n 1p)" 0 "the none VM has no interface but lo"
is "$(printf '%s\n' "$OUT" | sed -n 2p)" 0 "and no route"
ok "and reaches nothing (ping exits $RC)" test "$RC" -ne 0

fetch_ok()
{
	[ "$(get_hello 2>/dev/null)" = hello-through-the-netvm ]
}

# ---- the netvm restarts: the clients' monitors join their links again ----
run hutch stop gw
is "$RC" 0 "stop gw"
run hutch net ls --json
end=$(json_get "$OUT" '[l["client_end"] for l in j["links"] if l["client"]=="c1"][0]')
ok "with gw stopped c1's end is not up ($end)" test "$end" != up
run hutch start gw
is "$RC" 0 "start gw again"
ok "c1 fetches again after the netvm restart" wait_until 90 fetch_ok
ok "and every link is up again" wait_until 60 links_up
joins=$(json_get "$(hutch net ls --json)" '[l["client_end"] for l in j["links"]]')
diag "ends after the netvm restart: $joins"

# ---- a client restarts: the netvm listens again ----
run hutch stop c1
is "$RC" 0 "stop c1"
run hutch start c1
is "$RC" 0 "start c1 again"
ok "c1 fetches again after its own restart" wait_until 90 fetch_ok
run hutch exec c2 -- ping -c 1 -W 3 10.200.9.5
is "$RC" 0 "c2 still reaches the netvm"

# ---- a client defined after its netvm started has no link there until the netvm restarts ----
cat >"$T/late.yml" <<'EOF2'
late:
  source: {template: micro}
  memory: 256M
  network: {netvm: gw}
EOF2
run hutch create late --from "$T/late.yml"
is "$RC" 0 "create late while gw runs"
run hutch start late
ok "start late fails (exit $RC)" test "$RC" -ne 0
contains "$ERR" "netvm 'gw' was started before 'late' became its client" "it says why"
contains "$ERR" "restart it" "and what to do"
run hutch destroy late
is "$RC" 0 "destroy late"
kill "$HTTP_PID" 2>/dev/null
done_testing
