#!/usr/bin/env bash
# One micro VM through its whole life: create, start, list, inspect, render, logs, console,
# refusals while running, stop, list -a, destroy. One boot serves every assertion.
. "$(dirname "$0")/lib.sh"

# Most hutch processes (exec, list, the monitor) never use libcurl, libarchive or libcrypto, and
# linking them costs ~20 ms per process: they are loaded on first use (src/lib/lazylib.h).
needed=$(LC_ALL=C readelf -d "$HUTCH" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
unlike "$needed" 'libcurl|libarchive|libcrypto' "hutch does not link libcurl, libarchive or libcrypto ($needed)"

run hutch create demo --template micro
is "$RC" 0 "create demo --template micro"
ok "create wrote the resolved spec" test -s "$HUTCH_HOME/data/vms/demo/spec.yml"

run hutch list -a
like "$OUT" '^demo +stopped' "list -a shows a created VM as stopped"

run hutch start demo
is "$RC" 0 "start demo exits 0"
like "$OUT" '^started demo' "start prints 'started'"
is "$(qemu_count)" 1 "one QEMU runs for this HUTCH_HOME"

run hutch list
like "$OUT" '^demo +running +qemu +tcg +512M ' "list shows demo running, tcg, 512M"

run hutch list --json
is "$RC" 0 "list --json exits 0"
is "$(json_get "$OUT" '[v["state"] for v in j if v["name"]=="demo"][0]')" running "list --json parses and says running"
is "$(json_get "$OUT" '[v["memory"] for v in j if v["name"]=="demo"][0]')" 536870912 "list --json memory is in bytes"

run hutch inspect demo --json
is "$RC" 0 "inspect --json exits 0"
is "$(json_get "$OUT" 'j["name"]+" "+j["state"]+" "+str(j["cpus"])')" "demo running 1" "inspect --json parses: name, state, cpus"

run hutch inspect --render demo
is "$RC" 0 "inspect --render exits 0"
render=$(printf '%s\n' "$OUT" | tr -d '\\' | tr -s ' \n' ' ')
contains "$render" "-M microvm" "render: -M microvm"
contains "$render" "-nodefaults" "render: -nodefaults"
contains "$render" "-no-user-config" "render: -no-user-config"
contains "$render" "-display none" "render: -display none"
contains "$render" "-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny" "render: -sandbox on with all denies"
like "$render" "-chardev socket,id=[a-z0-9]+,fd=3[, ]" "render: the QMP chardev is fd=3"
like "$render" "-mon chardev=[a-z0-9]+,mode=control" "render: QMP monitor in control mode"
like "$render" "virtserialport,[^ ]*name=org\.hutch\.agent\.0" "render: virtserialport org.hutch.agent.0"
contains "$render" "$HUTCH_HOME/run/demo/console.sock" "render: console socket under the runtime dir"
like "$render" "-accel tcg" "render: tcg without /dev/kvm"

run hutch logs demo
is "$RC" 0 "logs exits 0"
like "$OUT" 'hutch-agent: ready' "logs contain the agent's ready line"

run hutch start demo
is "$RC" 3 "second start exits 3 (already running)"
like "$ERR" 'already running' "second start says already running"
is "$(qemu_count)" 1 "second start did not spawn another QEMU"

run hutch destroy demo
is "$RC" 1 "destroy while running is refused"
like "$ERR" 'running' "the refusal says it is running"
ok "refused destroy left the VM's directory" test -s "$HUTCH_HOME/data/vms/demo/spec.yml"

# The console is a socket: attaching with no input must not error. timeout ends it if it stays.
run timeout 5 "$HUTCH" console demo </dev/null
ok "console attaches without error" test "$RC" -eq 0 -o "$RC" -eq 124
unlike "$ERR" '^hutch: ' "console printed no error"

# logs -f follows until the VM stops.
"$HUTCH" logs -f demo >"$T/follow.out" 2>&1 &
follow=$!

run hutch stop demo
is "$RC" 0 "stop exits 0"
like "$OUT" '^stopped demo' "stop prints 'stopped'"
ok "QEMU is gone after stop" wait_until 30 no_qemu

if wait_until 30 eval '! kill -0 $follow 2>/dev/null'; then
	wait "$follow"
	is "$?" 0 "logs -f ends with status 0 when the VM stops"
	contains "$(cat "$T/follow.out")" "hutch-agent: ready" "logs -f printed the log"
else
	kill "$follow" 2>/dev/null
	fail "logs -f ends with status 0 when the VM stops" "logs -f still running 30 s after stop"
	fail "logs -f printed the log"
fi

run hutch stop demo
is "$RC" 0 "stop on a stopped VM exits 0"
like "$OUT$ERR" 'not running' "stop on a stopped VM says not running"

run hutch list
unlike "$OUT" '^demo ' "list without -a hides stopped VMs"
run hutch list -a
like "$OUT" '^demo +stopped' "list -a shows demo stopped"

run hutch destroy demo
is "$RC" 0 "destroy exits 0"
ok "destroy removed the VM's directory" test ! -e "$HUTCH_HOME/data/vms/demo"
run hutch list -a
unlike "$OUT" '^demo ' "list -a no longer shows demo"
run hutch start demo
like "$ERR" "no VM named 'demo'" "start after destroy: no VM named"

done_testing
