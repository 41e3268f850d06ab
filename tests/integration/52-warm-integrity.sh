#!/usr/bin/env bash
# A warm template's files never change once clones exist: 20 clones run, dirty and free memory and
# drop their caches, and the memory and state files hash the same as before.
# once
# timeout: 1200
. "$(dirname "$0")/lib.sh"
exec </dev/null

HUTCH_CMD_TIMEOUT=600 run hutch template save micro
is "$RC" 0 "template save micro"
dir=$(json_get "$(hutch template ls --json)" 'j[0]["dir"]' 2>/dev/null)
if [ ! -f "$dir/mem" ] || [ ! -f "$dir/state" ]; then
	fail "the template's files are there" "dir: '$dir'"
	done_testing
	exit 1
fi
before=$(cd "$dir" && sha256sum mem state meta.json)
files() { (cd "$dir" && stat -c '%n %i %Y %s' mem state meta.json 2>&1); }
was=$(files)

# Each clone writes 48 MiB into its RAM-backed root, frees it, and asks its kernel to drop caches:
# copy-on-write pages come and go, and nothing may reach the template's file.
churn='dd if=/dev/zero of=/tmp/fill bs=1048576 count=48 2>/dev/null && rm /tmp/fill && sync && echo 3 > /proc/sys/vm/drop_caches && echo freed'
good=0
for i in $(seq 1 20); do
	run hutch run --rm micro -- sh -c "$churn"
	if [ "$RC" = 0 ] && [ "$OUT" = freed ]; then
		good=$((good + 1))
	else
		diag "clone $i: exit $RC: $OUT $ERR"
	fi
	case "$ERR" in *"booting cold"*) diag "clone $i booted cold: $ERR" ;; esac
	# which clone touched the template, and what its run said (its monitor log goes with --rm)
	now=$(files)
	if [ "$now" != "$was" ]; then
		diag "clone $i changed the template's files:" "$was" "->" "$now" "its stderr: $ERR"
		was=$now
	fi
done
is "$good" 20 "20 clones ran, dirtied and freed memory"
after=$(cd "$dir" && sha256sum mem state meta.json)
is "$after" "$before" "the template's memory, state and meta files hash the same after 20 clones"
is "$(json_get "$(hutch template ls --json)" 'j[0]["dir"]')" "$dir" "the template is still the same one"
ok "no QEMU left" wait_until 30 no_qemu
done_testing
