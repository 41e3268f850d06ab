#!/usr/bin/env bash
# network: {auto_forward: true}: busybox httpd in a micro guest is reachable from the host on the
# port `port ls` shows (origin auto), and the forward goes when httpd does; a loopback-only
# listener gets none; config.yml's auto_forward_max caps them.
. "$(dirname "$0")/lib.sh"
exec </dev/null

mkdir -p "$HUTCH_HOME/config"
printf 'auto_forward_max: 3\n' >"$HUTCH_HOME/config/config.yml"
cat >"$T/hutch.yml" <<'EOF'
af:
  source: {template: micro}
  memory: 256M
  network: {mode: user, auto_forward: true, forward: ["0:7000"]}
EOF
run hutch create af --from "$T/hutch.yml"
is "$RC" 0 "create af with auto_forward"
run hutch start af
is "$RC" 0 "start af"

# the host port `port ls` shows for guest port $1 with origin auto, or nothing
auto_port()
{
	hutch port af ls | sed -n "s/^127\.0\.0\.1:\([0-9]*\):$1\/tcp auto\$/\1/p"
}
has_auto() { [ -n "$(auto_port "$1")" ]; }
no_auto() { [ -z "$(auto_port "$1")" ]; }

run hutch exec af -- sh -c 'mkdir -p /www && echo hello-auto-forward >/www/index.html &&
	setsid busybox httpd -p 8123 -h /www </dev/null >/dev/null 2>&1'
is "$RC" 0 "busybox httpd started in the guest on port 8123"
ok "port ls shows a forward for guest port 8123 with origin auto" wait_until 30 has_auto 8123
HP=$(auto_port 8123)
diag "guest port 8123 is forwarded from 127.0.0.1:$HP"
run curl -s --max-time 10 "http://127.0.0.1:$HP/index.html"
is "$OUT" "hello-auto-forward" "curl on the host reaches the guest's httpd"
run hutch port af ls --json
is "$(json_get "$OUT" 'j["origins"][j["forwards"].index("'"$HP"':8123/tcp")]')" auto "port ls --json says origin auto"
is "$(json_get "$OUT" 'j["origins"][0]')" static "and the spec's forward stays static"
unlike "$(hutch port af ls)" ":7000/tcp auto" "the spec's forward is not an auto one"

# ---- a loopback-only listener is not forwarded (the host could not reach it) ----
run hutch exec af -- sh -c 'setsid busybox httpd -p 127.0.0.1:8124 -h /www </dev/null >/dev/null 2>&1'
run hutch exec af -- sh -c 'setsid busybox httpd -p 8125 -h /www </dev/null >/dev/null 2>&1'
ok "a second listener (8125) gets its forward" wait_until 30 has_auto 8125
ok "the loopback-only one (8124) does not" no_auto 8124

# ---- the listener goes, and so does the forward ----
run hutch exec af -- sh -c 'for d in /proc/[0-9]*; do tr "\0" " " <$d/cmdline 2>/dev/null | grep -q "httpd -p 8123 " && kill ${d#/proc/}; done; true'
ok "the forward goes when httpd on 8123 is killed" wait_until 30 no_auto 8123
run curl -s --max-time 5 "http://127.0.0.1:$HP/index.html"
ok "curl to the old port fails now (exit $RC)" test "$RC" -ne 0

# ---- the cap: auto_forward_max 3 ----
run hutch exec af -- sh -c 'for p in 9001 9002 9003 9004 9005; do setsid busybox httpd -p $p -h /www </dev/null >/dev/null 2>&1; done'
count_auto() { hutch port af ls | grep -c ' auto$'; }
three() { [ "$(count_auto)" -eq 3 ]; }
ok "six listeners get three forwards (auto_forward_max: 3)" wait_until 30 three
run hutch port af ls
is "$(printf '%s\n' "$OUT" | grep -c ' auto$')" 3 "and stay at three"
contains "$(cat "$HUTCH_HOME/data/vms/af/monitor.log")" "more ports than auto_forward_max (3)" "the monitor log says why"
run hutch exec af -- true
is "$RC" 0 "the agent still answers"
done_testing
