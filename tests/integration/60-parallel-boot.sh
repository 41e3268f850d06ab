#!/usr/bin/env bash
# once
# Four micro VMs booting at once on a contended CPU. Under TCG a microvm guest can hang forever
# calibrating its TSC (DESIGN.md, measured facts); every one of them must reach "started".
. "$(dirname "$0")/lib.sh"

vms="p1 p2 p3 p4"
for v in $vms; do
	run hutch create "$v" --template micro --memory 256M
	is "$RC" 0 "create $v"
done

declare -A pid=()
for v in $vms; do
	hutch start --timeout 150 "$v" >"$T/$v.out" 2>"$T/$v.err" &
	pid[$v]=$!
done
for v in $vms; do
	wait "${pid[$v]}"
	rc=$?
	if [ $rc -eq 0 ] && grep -q "^started $v" "$T/$v.out"; then
		pass "$v reached started while 4 booted at once"
	else
		fail "$v reached started while 4 booted at once" "exit $rc" "$(cat "$T/$v.out" "$T/$v.err")" \
			"console log tail:" "$(tail -5 "$HUTCH_HOME/data/vms/$v/console.log" 2>/dev/null)"
	fi
done
is "$(qemu_count)" 4 "four QEMUs run"

run hutch list --json
is "$(json_get "$OUT" 'sorted(v["name"] for v in j if v["state"]=="running")')" "['p1', 'p2', 'p3', 'p4']" "list --json shows all four running"

for v in $vms; do
	run hutch logs "$v"
	like "$OUT" 'hutch-agent: ready' "$v's console log has the agent's ready line"
	unlike "$OUT" 'could not calculate TSC khz' "$v did not hit the TSC calibration failure"
done

pids=()
for v in $vms; do
	hutch stop "$v" >/dev/null 2>&1 &
	pids+=($!)
done
rcs=0
for p in "${pids[@]}"; do wait "$p" || rcs=$((rcs + 1)); done
is "$rcs" 0 "four parallel stops succeed"
ok "no QEMU left" wait_until 30 no_qemu

done_testing
