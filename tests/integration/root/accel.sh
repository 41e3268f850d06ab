#!/usr/bin/env bash
# As root, where /dev/kvm opens: hutch must not trust the open. The first start (or doctor --probe)
# boots the micro template under KVM; the verdict is cached per host boot. Where KVM works, VMs use
# it; where it does not (this machine kind: a paravirtual KVM that aborts QEMU on MSR 0x10a, or a
# guest that hangs), auto runs them under TCG with one warning line, and accel: kvm fails with the
# probe's own words. Run by tests/integration/run.sh before it drops privileges.
# Boots: the probe (up to 2 short KVM boots), then 2-3 micro VMs.
. "$(dirname "$0")/../lib.sh"

V=$HUTCH_HOME/data/vms
VERDICT=$HUTCH_HOME/cache/accel.json

if [ ! -e /dev/kvm ]; then
	pass "# SKIP no /dev/kvm on this host: the unprivileged tests cover a host without KVM"
	done_testing
	exit 0
fi

run hutch doctor --probe --json
like "$RC" '^[01]$' "doctor --probe exits 0 or 1"
works=$(json_get "$OUT" 'j["accel"]["works"]')
detail=$(json_get "$OUT" 'j["accel"]["detail"]')
cpu=$(json_get "$OUT" 'j["accel"]["cpu"]')
diag "probe: works=$works cpu=$cpu detail=$detail"
like "$works" '^(True|False)$' "doctor --probe --json reports the verdict"
ok "the verdict is cached" test -f "$VERDICT"
is "$(json_get "$(cat "$VERDICT")" 'j["host"]["boot_id"]')" "$(cat /proc/sys/kernel/random/boot_id)" \
	"keyed by this host's boot id"
is "$(json_get "$(cat "$VERDICT")" 'j["host"]["kernel"]')" "$(uname -r)" "and its kernel release"
stamp=$(stat -c %Y.%s "$VERDICT")

if [ "$works" = True ]; then
	run hutch run --rm micro -- cat /proc/cpuinfo
	is "$RC" 0 "KVM works here: run --rm micro"
	unlike "$ERR" 'TCG' "no TCG warning"
	printf 'k:\n  source: {template: micro}\n  accel: kvm\n' >"$T/k.yml"
	run hutch create k --from "$T/k.yml"
	run hutch start k
	is "$RC" 0 "accel: kvm starts"
	run hutch list --json
	is "$(json_get "$OUT" '[v["accel"] for v in j if v["name"]=="k"][0]')" kvm "and runs under kvm"
	like "$(hutch inspect --render k)" "^  $cpu " "with the CPU model the probe proved"
	hutch stop k >/dev/null 2>&1
else
	like "$detail" '.' "the verdict says why"
	is "$(json_get "$OUT" '[c["status"] for c in j["checks"] if c["name"]=="kvm"][0]')" warn \
		"a failed probe is a warning (VMs still run, under TCG)"
	run hutch run --rm micro -- echo through-tcg
	is "$RC" 0 "auto with a failed probe: run --rm still works (TCG)"
	is "$OUT" through-tcg "and runs the command"
	is "$(printf '%s\n' "$ERR" | grep -c 'TCG' || true)" 1 "one warning line"
	contains "$ERR" "KVM failed its probe" "that says the probe failed"
	contains "$ERR" "hutch doctor" "and points at hutch doctor"
	is "$(stat -c %Y.%s "$VERDICT")" "$stamp" "the cached verdict was used, not a new probe"

	printf 'k:\n  source: {template: micro}\n  accel: kvm\n' >"$T/k.yml"
	run hutch create k --from "$T/k.yml"
	run hutch start k
	is "$RC" 1 "accel: kvm never falls back"
	contains "$ERR" "accel: kvm: KVM failed its probe on this host" "its error carries the verdict"
	contains "$ERR" "${detail:0:60}" "with the probe's own words"
	ok "nothing left running" wait_until 20 no_qemu

	run hutch doctor --json
	is "$(json_get "$OUT" '[c["status"] for c in j["checks"] if c["name"]=="kvm"][0]')" warn \
		"doctor (no probe) reads the cached verdict"
	contains "$(json_get "$OUT" '[c["detail"] for c in j["checks"] if c["name"]=="kvm"][0]')" "${detail:0:60}" \
		"and shows the probe's words"
	mkdir -p "$HUTCH_HOME/config"
	printf 'accel: kvm\n' >"$HUTCH_HOME/config/config.yml"
	run hutch doctor --json
	is "$RC" 1 "with accel: kvm in config.yml, a failed probe fails doctor"
	is "$(json_get "$OUT" '[c["status"] for c in j["checks"] if c["name"]=="kvm"][0]')" fail "kvm: fail"
	rm -f "$HUTCH_HOME/config/config.yml"

	# a stale verdict (another boot) is probed again
	python3 - "$VERDICT" <<'PY'
import json, sys
p = sys.argv[1]
j = json.load(open(p))
j["host"]["boot_id"] = "00000000-0000-0000-0000-000000000000"
json.dump(j, open(p, "w"))
PY
	run hutch run --rm micro -- true
	is "$RC" 0 "a verdict from another boot: the start probes again and runs"
	is "$(json_get "$(cat "$VERDICT")" 'j["host"]["boot_id"]')" "$(cat /proc/sys/kernel/random/boot_id)" \
		"the new verdict is for this boot"
fi
is "$(ls "$V" 2>/dev/null | grep -c '^micro-' || true)" 0 "no disposable VM left behind"

done_testing
