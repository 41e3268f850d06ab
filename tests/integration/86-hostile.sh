#!/usr/bin/env bash
# A hostile guest agent (build/hostile-agent, mode from hutch.hostile=MODE on the kernel command
# line) against a real monitor: garbage, oversized and flooding frames leave the monitor up and the
# VM agent-less with a clear error; a malformed HELLO fails the start; no HELLO at all is a bounded
# wait that points at `hutch logs`. Its own HUTCH_HOME: the micro template cache is built around
# HUTCH_AGENT.
. "$(dirname "$0")/lib.sh"
exec </dev/null

use_hostile_agent

modes="garbage oversized flood badhello nohello"
for m in $modes; do
	printf 'h%s:\n  cmdline: hutch.hostile=%s\n' "$m" "$m" >"$T/h$m.yml"
	run hutch create "h$m" --from "$T/h$m.yml"
	is "$RC" 0 "create h$m (hutch.hostile=$m)"
done

# Boot them all at once: each start's output lands in $T/start.MODE.{out,err,rc}.
for m in $modes; do
	tmo=()
	[ "$m" = nohello ] && tmo=(--timeout 15)
	(
		hutch start "${tmo[@]}" "h$m" >"$T/start.$m.out" 2>"$T/start.$m.err"
		echo $? >"$T/start.$m.rc"
	) &
done
wait

# vm_gone NAME: no monitor and no QEMU for NAME.
vm_gone()
{
	[ -z "$(monitor_pid "$1")" ] && [ -z "$(pids_of_home "qemu-system.*-name $1,")" ]
}

# ---- garbage, oversized, flood: the monitor survives, exec is a clear error, stop works ----
for m in garbage oversized flood; do
	vm=h$m
	is "$(cat "$T/start.$m.rc")" 0 "$m: start succeeds (the agent said HELLO)"
	if [ "$m" = flood ]; then
		# The flood starts at the first EXEC. A reader that does not read for a while stops the
		# CLI's credit, so the agent overruns its window: the monitor must cut it off, not buffer.
		hutch exec "$vm" -- cat /dev/zero 2>"$T/flood.err" | { sleep 5; wc -c >"$T/flood.bytes"; }
		RC=${PIPESTATUS[0]} OUT="" ERR=$(cat "$T/flood.err") _last_cmd="hutch exec $vm -- cat /dev/zero | slow reader"
	else
		run hutch exec "$vm" -- true
	fi
	is "$RC" 1 "$m: exec exits 1"
	like "$ERR" 'agent' "$m: exec's error is about the guest agent"
	like "$ERR" 'broken|malformed|agent-less' "$m: exec's error says the agent is broken / agent-less"
	mon=$(monitor_pid "$vm")
	ok "$m: the monitor is still up" test -n "$mon"
	if [ "$m" = flood ] && [ -n "$mon" ]; then
		hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$mon/status" 2>/dev/null)
		ok "flood: the monitor's peak memory stayed bounded (${hwm:-?} kB < 64 MiB)" test "${hwm:-999999}" -lt 65536
	fi
	run hutch list
	like "$OUT" "^$vm +running" "$m: list shows the VM running"
	run hutch inspect "$vm" --json
	is "$RC" 0 "$m: inspect --json works"
	is "$(json_get "$OUT" 'j["state"]+" "+j.get("agent","?")' 2>/dev/null)" "running broken" "$m: inspect says running, agent broken"
	run hutch exec "$vm" -- true
	is "$RC" 1 "$m: a second exec is again a clear error, not a hang"
	run hutch stop "$vm"
	is "$RC" 0 "$m: stop works"
	ok "$m: no monitor or QEMU left for $vm" wait_until 30 vm_gone "$vm"
	run hutch list -a
	like "$OUT" "^$vm +stopped" "$m: list -a shows it stopped"
done

# ---- badhello: the start fails with a clear error and leaves nothing running ----
is "$(cat "$T/start.badhello.rc")" 1 "badhello: start exits 1"
like "$(cat "$T/start.badhello.err")" 'malformed' "badhello: the error says the agent's message was malformed"
ok "badhello: no monitor or QEMU left" wait_until 30 vm_gone hbadhello
run hutch list -a
like "$OUT" '^hbadhello +stopped' "badhello: list -a shows it stopped"

# ---- nohello: a bounded wait, then an error that points at `hutch logs` ----
is "$(cat "$T/start.nohello.rc")" 1 "nohello: start --timeout 15 exits 1"
like "$(cat "$T/start.nohello.err")" 'hutch logs hnohello' "nohello: the error points at 'hutch logs hnohello'"
ok "nohello: no monitor or QEMU left" wait_until 30 vm_gone hnohello
run hutch logs hnohello
is "$RC" 0 "nohello: the 'hutch logs hnohello' it points at works"

ok "no QEMU left for this HUTCH_HOME" wait_until 30 no_qemu

done_testing
