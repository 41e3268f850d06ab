#!/usr/bin/env bash
# Acceleration, as the unprivileged user: accel: tcg forced (spec, --accel, config.yml), accel: kvm
# refused with its cause, auto falling back with one warning line, a broken config.yml named by
# file:line, `doctor --json`'s KVM check, the KVM path where a probe proves KVM for this user (skipped
# with the reason elsewhere), and a disposable VM that fails to start keeping its logs.
# The root side (a /dev/kvm that opens and fails the probe) is tests/integration/root/accel.sh.
# Boots: 3 micro VMs under TCG (plus one under KVM where KVM works).
. "$(dirname "$0")/lib.sh"

helpers=${HUTCH_HELPERS:-$(dirname "$HUTCH")}
V=$HUTCH_HOME/data/vms
CFG=$HUTCH_HOME/config/config.yml

kvm_state()
{
	if [ ! -e /dev/kvm ]; then
		echo missing
	elif [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
		echo usable
	else
		echo denied
	fi
}
KVM=$(kvm_state)
diag "/dev/kvm for $(id -un): $KVM"

# one warning line about TCG, and it points at doctor
warn_lines()
{
	printf '%s\n' "$1" | grep -c 'TCG' || true
}

# ---- accel: tcg, from --accel at create: no probe, no warning ----
run hutch create t1 --template micro --accel tcg
is "$RC" 0 "create --accel tcg"
like "$(cat "$V/t1/spec.yml")" '^  accel: tcg$' "the resolved spec records accel: tcg"
run hutch inspect --render t1
like "$OUT" '^  tcg \\$' "render: -accel tcg"
like "$OUT" '^  max \\$' "render: -cpu max under TCG"
run hutch start t1
is "$RC" 0 "start t1 (accel: tcg)"
is "$(warn_lines "$ERR")" 0 "no TCG warning when tcg was asked for"
run hutch list --json
is "$(json_get "$OUT" '[v["accel"] for v in j if v["name"]=="t1"][0]')" tcg "list --json: t1 runs under tcg"
run hutch stop t1
is "$RC" 0 "stop t1"
is "$(ls "$HUTCH_HOME/cache/accel.json" 2>/dev/null)" "" "accel: tcg never probes KVM"

# ---- accel: kvm never falls back ----
printf 'k1:\n  source: {template: micro}\n  accel: kvm\n' >"$T/k.yml"
run hutch create k1 --from "$T/k.yml"
is "$RC" 0 "create k1 with accel: kvm from a spec file"
run hutch start --timeout 60 k1
case $KVM in
missing)
	is "$RC" 1 "accel: kvm without /dev/kvm: start fails"
	contains "$ERR" "accel: kvm: /dev/kvm does not exist" "the error names the missing device"
	;;
denied)
	is "$RC" 1 "accel: kvm without permission: start fails"
	contains "$ERR" "accel: kvm: cannot open /dev/kvm: Permission denied" "the error names the permission"
	like "$ERR" "usermod -aG [a-z_-]+ $(id -un)" "and the group fix for this user"
	;;
usable)
	if [ "$RC" -eq 0 ]; then
		pass "accel: kvm: start works where the probe proved KVM"
		run hutch list --json
		is "$(json_get "$OUT" '[v["accel"] for v in j if v["name"]=="k1"][0]')" kvm "k1 runs under kvm"
		hutch stop k1 >/dev/null 2>&1
	else
		is "$RC" 1 "accel: kvm where the probe failed: start fails"
		contains "$ERR" "accel: kvm: KVM failed its probe on this host" "the error carries the probe's verdict"
	fi
	;;
esac
ok "accel: kvm: nothing left running" wait_until 20 no_qemu
run hutch start --timeout 60 --json k1
[ "$KVM" = usable ] && [ "$RC" -eq 0 ] && hutch stop k1 >/dev/null 2>&1
is "$(printf '%s\n' "$ERR" | grep -c 'accel: kvm')" "$([ "$RC" -eq 0 ] && echo 0 || echo 1)" \
	"one error line, printed once"

# ---- auto: falls back to TCG with one warning line that points at doctor ----
if [ "$KVM" != usable ]; then
	run hutch run --rm micro -- echo via-auto
	is "$RC" 0 "auto without usable KVM: run --rm works under TCG"
	is "$OUT" "via-auto" "and the command ran"
	is "$(warn_lines "$ERR")" 1 "exactly one warning line about TCG"
	contains "$ERR" "hutch doctor" "the warning points at 'hutch doctor'"
else
	pass "# SKIP auto fallback: KVM is usable for $(id -un) (the root test covers a failing probe)"
	pass "# SKIP auto fallback"
	pass "# SKIP auto fallback"
	pass "# SKIP auto fallback"
fi

# ---- config.yml: the default for VMs whose spec says nothing ----
mkdir -p "$(dirname "$CFG")"
printf '# defaults\naccel: tcg\n' >"$CFG"
run hutch run --rm micro -- true
is "$RC" 0 "config.yml accel: tcg: run --rm works"
is "$(warn_lines "$ERR")" 0 "no TCG warning when config.yml asks for tcg"
printf 'accel: fast\n' >"$CFG"
run hutch run --rm micro -- true
is "$RC" 1 "a bad config.yml fails the start"
contains "$ERR" "config.yml:1: accel: expected auto, kvm or tcg, got 'fast'" "the error names file, line and key"
is "$(ls "$V" | grep -c '^micro-' || true)" 0 "and leaves no disposable VM behind"
rm -f "$CFG"

# --accel on run: for a disposable VM
run hutch run --rm --accel tcg micro -- true
is "$RC" 0 "run --rm --accel tcg"
is "$(warn_lines "$ERR")" 0 "no TCG warning with --accel tcg"
run hutch run --rm --accel turbo micro -- true
is "$RC" 2 "run --accel turbo is a usage error"
contains "$ERR" "turbo" "naming the bad value"

# ---- doctor: the KVM check as data ----
run hutch doctor --json
json_ok=$(json_get "$OUT" '[c["status"] for c in j["checks"] if c["name"]=="kvm"][0]' 2>/dev/null)
like "$json_ok" '^(ok|warn|fail)$' "doctor --json has a kvm check with a status"
case $KVM in
denied)
	contains "$(json_get "$OUT" '[c["fix"] for c in j["checks"] if c["name"]=="kvm"][0]')" "usermod -aG " \
		"doctor's fix for a denied /dev/kvm is the kvm group"
	;;
*) pass "# SKIP the kvm group fix: /dev/kvm is $KVM here" ;;
esac

# ---- the KVM path, where KVM works for this user ----
if [ "$KVM" = usable ]; then
	run hutch doctor --probe --json
	works=$(json_get "$OUT" 'j["accel"]["works"]' 2>/dev/null)
	if [ "$works" = True ]; then
		run hutch run --rm micro -- cat /proc/cpuinfo
		is "$RC" 0 "auto with a proven KVM: run works"
		like "$ERR$OUT" 'hypervisor' "the guest runs under a hypervisor"
	else
		pass "# SKIP the KVM path: the probe says KVM does not work here: $(json_get "$OUT" 'j["accel"]["detail"]' 2>/dev/null)"
		pass "# SKIP the KVM path"
	fi
else
	pass "# SKIP the KVM path: /dev/kvm is $KVM for $(id -un)"
	pass "# SKIP the KVM path"
fi

# ---- a disposable VM that fails to start keeps its logs where the message says ----
mkdir -p "$T/fb"
ln -s "$helpers/fake-qemu" "$T/fb/qemu-system-x86_64"
run env HUTCH_QEMU="$T/fb/qemu-system-x86_64" FAKE_QEMU_MODE=crash timeout -k 5 60 "$HUTCH" run --rm --accel tcg micro -- true
is "$RC" 1 "a disposable VM whose QEMU crashes: run fails"
contains "$ERR" "logs are kept in $HUTCH_HOME/data/failed/micro-" "the error says where its logs are kept"
kept=$(printf '%s\n' "$ERR" | sed -n 's/.*logs are kept in \([^ )]*\)).*/\1/p' | head -1)
ok "the kept dir exists" test -d "$kept"
contains "$(cat "$kept/qemu.log" 2>/dev/null)" "simulated crash" "its qemu.log has what QEMU said"
named=$(printf '%s\n' "$ERR" | grep -oE "$HUTCH_HOME/[^ ):]*qemu\.log" | head -1)
ok "the qemu.log the error names exists ($named)" test -f "$named"
is "$(ls "$V" | grep -c '^micro-' || true)" 0 "the disposable VM itself is gone"

done_testing
