#!/usr/bin/env bash
# netvm links: the bad inputs, each with its error, and nothing booted. A missing netvm, a netvm
# without is_netvm and a cycle at create; spec errors naming file:line: key; a /31 two links share;
# a bad netvm_range in config.yml.
. "$(dirname "$0")/lib.sh"
exec </dev/null

cat >"$T/hutch.yml" <<'EOF'
plain:
  source: {template: micro}
gw:
  source: {template: micro}
  network: {is_netvm: true}
orphan:
  source: {template: micro}
  network: {netvm: nosuch}
leech:
  source: {template: micro}
  network: {netvm: plain}
a:
  source: {template: micro}
  network: {is_netvm: true, netvm: b}
b:
  source: {template: micro}
  network: {is_netvm: true, netvm: a}
c1:
  source: {template: micro}
  network: {netvm: gw, netvm_subnet: 10.200.3.0/31}
c2:
  source: {template: micro}
  network: {netvm: gw, netvm_subnet: 10.200.3.0/31}
EOF

run hutch create orphan --from "$T/hutch.yml"
ok "a client of a missing netvm is refused (exit $RC)" test "$RC" -ne 0
contains "$ERR" "netvm 'nosuch' does not exist" "it names the missing netvm"
run hutch create plain --from "$T/hutch.yml"
run hutch create leech --from "$T/hutch.yml"
ok "a client of a VM without is_netvm is refused (exit $RC)" test "$RC" -ne 0
contains "$ERR" "'plain' is not a netvm: its spec needs network: {is_netvm: true}" "it says what is missing"

# a -> b -> a: a can be made while b does not exist only if it is not its client, so: b first,
# routing through a while a is a plain netvm, then a as b's client closes the loop
cat >"$T/a0.yml" <<'EOF'
a:
  source: {template: micro}
  network: {is_netvm: true}
EOF
run hutch create a --from "$T/a0.yml"
is "$RC" 0 "create a (a netvm of its own)"
run hutch create b --from "$T/hutch.yml"
is "$RC" 0 "create b, routing through a"
run hutch destroy a
is "$RC" 0 "destroy a"
run hutch create a --from "$T/hutch.yml"
ok "a routing through b, which routes through a, is refused (exit $RC)" test "$RC" -ne 0
contains "$ERR" "netvm cycle: 'a' -> 'b'" "it names the cycle"
run hutch list --json
unlike "$OUT" '"name": "a"' "a was not created"

run hutch create gw --from "$T/hutch.yml"
is "$RC" 0 "create gw"
run hutch create c1 --from "$T/hutch.yml"
is "$RC" 0 "create c1 with a pinned /31"
run hutch create c2 --from "$T/hutch.yml"
ok "a second link on the same /31 is refused (exit $RC)" test "$RC" -ne 0
contains "$ERR" "links 'c1' -> 'gw' and 'c2' -> 'gw' both get 10.200.3.0/31" "it names both pairs"

# ---- spec errors: file:line: key ----
printf 'x:\n  network: {mode: netvm}\n' >"$T/bad1.yml"
run hutch create x --from "$T/bad1.yml"
contains "$ERR" "bad1.yml:2: network.mode: mode netvm needs netvm: NAME" "mode netvm without netvm: NAME"
printf 'x:\n  network:\n    netvm: gw\n    netvm_subnet: 10.200.3.1/31\n' >"$T/bad2.yml"
run hutch create x --from "$T/bad2.yml"
contains "$ERR" "bad2.yml:4: network.netvm_subnet: 10.200.3.1 is the odd address of its /31" "an odd /31 address"
printf 'x:\n  network: {mode: netvm, netvm: gw, auto_forward: true}\n' >"$T/bad3.yml"
run hutch create x --from "$T/bad3.yml"
contains "$ERR" "bad3.yml:2: network.auto_forward: auto_forward needs mode: user" "auto_forward off user mode"

# ---- config.yml ----
mkdir -p "$HUTCH_HOME/config"
printf 'netvm_range: 10.200.0.1/16\n' >"$HUTCH_HOME/config/config.yml"
run hutch net ls
ok "net ls with a bad netvm_range fails (exit $RC)" test "$RC" -ne 0
contains "$ERR" "config.yml:1: netvm_range: expected an IPv4 network" "it names file:line: key"
printf 'netvm_range: 10.77.0.0/24\n' >"$HUTCH_HOME/config/config.yml"
run hutch net ls --json
is "$RC" 0 "net ls with netvm_range 10.77.0.0/24"
is "$(json_get "$OUT" '[l["client_addr"] for l in j["links"] if l["client"]=="b"][0].rsplit(".",1)[0]')" 10.77.0 \
	"a hashed link comes from the configured range"
run hutch net ls
contains "$OUT" "NETVM" "net ls prints a table"
contains "$OUT" "stopped" "with the ends' states"
done_testing
