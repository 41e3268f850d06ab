#!/usr/bin/env bash
# The balloon against a real micro VM under QEMU: free-page reporting gives memory the guest frees
# back to the host (QEMU's RSS drops), and the monitor's policy inflates the balloon under injected
# host pressure (HUTCH_PSI_FILE) without going below the floor, and deflates when it is gone.
# Waits are bounded polls, never timing assertions.
# once
# timeout: 900
. "$(dirname "$0")/lib.sh"
exec </dev/null

mkdir -p "$HUTCH_HOME/config"
cat >"$HUTCH_HOME/config/config.yml" <<'EOF'
balloon: {poll_interval: 1s, min_poll_interval: 250ms}
EOF
cat >"$T/hutch.yml" <<'EOF'
bal:
  source: {template: micro}
  memory: 1G
  balloon: {min: 512M}
flat:
  source: {template: micro}
  balloon: false
EOF
export HUTCH_PSI_FILE=$T/psi # absent: no pressure

MIB=1048576
field() { hutch balloon bal --json | python3 -c "import json,sys; v=json.load(sys.stdin)['$1']; print('' if v is None else v)"; }
qemu_rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$(qemu_pids | head -1)/status"; }
guest_avail_kb() { hutch exec bal -- awk '/^MemAvailable:/ {print $2}' /proc/meminfo; }

run hutch create flat --from "$T/hutch.yml"
run hutch inspect flat --render
is "$RC" 0 "inspect --render a VM with balloon: false"
unlike "$OUT" 'virtio-balloon' "balloon: false has no balloon device"

run hutch create bal --from "$T/hutch.yml"
is "$RC" 0 "create bal (memory 1G, balloon.min 512M)"
run hutch inspect bal --render
contains "$OUT" 'virtio-balloon-device,id=balloon0,free-page-reporting=on,deflate-on-oom=on' \
	"the balloon reports free pages and deflates on OOM"
run hutch start bal
is "$RC" 0 "start bal"

ok "the guest reports balloon statistics" wait_until 60 sh -c "[ -n \"\$(hutch balloon bal --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"guest_available\"] or \"\")')\" ]"
run hutch balloon bal
is "$RC" 0 "hutch balloon NAME"
like "$OUT" '^memory: +1.0 GiB of 1.0 GiB \(floor 512' "shows the size, the memory and the floor"
like "$OUT" '^decision: +no host pressure' "and the last decision with its reason"

# ---- free-page reporting: a guest frees 300 MiB and QEMU's RSS drops by most of it ----
run hutch exec bal -- sh -c 'dd if=/dev/zero of=/fill bs=1M count=300 2>/dev/null && sync'
is "$RC" 0 "the guest writes 300 MiB into its RAM (a file in its initramfs root)"
high=$(qemu_rss_kb)
diag "QEMU RSS with the 300 MiB held: $((high / 1024)) MiB"
run hutch exec bal -- rm /fill
is "$RC" 0 "the guest frees it"
if wait_until 120 sh -c "[ \$(awk '/^VmRSS:/ {print \$2}' /proc/$(qemu_pids | head -1)/status) -lt $((high - 200 * 1024)) ]"; then
	pass "QEMU's RSS dropped by more than 200 MiB"
else
	fail "QEMU's RSS dropped by more than 200 MiB (still $(($(qemu_rss_kb) / 1024)) MiB, was $((high / 1024)) MiB)"
fi
diag "QEMU RSS after the free: $(($(qemu_rss_kb) / 1024)) MiB"

# ---- host pressure: inflate, never below the floor; pressure gone: deflate ----
before=$(guest_avail_kb)
echo 'some avg10=60.00 avg60=20.00 avg300=5.00 total=123456' >"$HUTCH_PSI_FILE"
echo 'full avg10=10.00 avg60=2.00 avg300=1.00 total=12345' >>"$HUTCH_PSI_FILE"
ok "under pressure the balloon inflates" wait_until 90 sh -c "[ \$(hutch balloon bal --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"actual\"])') -lt $((896 * MIB)) ]"
low=$((1024 * MIB))
for _ in $(seq 20); do
	a=$(field actual)
	[ -n "$a" ] && [ "$a" -lt "$low" ] && low=$a
	sleep 0.5
done
diag "smallest guest memory seen under pressure: $((low / MIB)) MiB"
ok "the guest's memory never went below the floor (512 MiB)" test "$low" -ge $((512 * MIB))
after=$(guest_avail_kb)
diag "guest MemAvailable: $((before / 1024)) MiB before, $((after / 1024)) MiB under pressure"
ok "the guest's available memory fell" test "$after" -lt "$((before - 100 * 1024))"
ok "and stays above the critical line (256 MiB)" test "$after" -ge $((256 * 1024 - 32 * 1024))
like "$(hutch balloon bal)" '^decision: +host pressure' "the decision names the host pressure"

rm -f "$HUTCH_PSI_FILE"
ok "pressure gone: the balloon deflates to the whole memory" wait_until 90 sh -c "[ \$(hutch balloon bal --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"actual\"])') -eq $((1024 * MIB)) ]"

# ---- a manual target, within bounds ----
run hutch balloon bal --target 100M
is "$RC" 1 "a target below the floor is refused"
contains "$ERR" "between the floor" "and the error says the bounds"
run hutch balloon bal --target 700M
is "$RC" 0 "--target 700M"
ok "the guest's memory goes to 700 MiB" wait_until 60 sh -c "[ \$(hutch balloon bal --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"actual\"])') -le $((700 * MIB + 8 * MIB)) ]"
like "$(hutch balloon bal)" 'target: .*\(manual\)' "the target is shown as manual"
run hutch balloon bal --target auto
is "$RC" 0 "--target auto"
ok "back to the policy, it deflates" wait_until 60 sh -c "[ \$(hutch balloon bal --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"actual\"])') -eq $((1024 * MIB)) ]"
run hutch balloon bal --target lots
is "$RC" 2 "--target lots is a usage error"

run hutch stop bal
is "$RC" 0 "stop bal"
done_testing
