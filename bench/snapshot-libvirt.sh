#!/bin/bash
# bench/snapshot-libvirt.sh (issue 14, snapshots on libvirt): `hutch snapshot save` / `restore` of a
# running micro VM on libvirt against plain virsh on the same domain (`virsh snapshot-create-as`,
# `virsh snapshot-revert --running`), and hutch's qemu backend (savevm/loadvm through its monitor)
# as a second reference. "Restored" is judged alike on every side: the restore command, then
# `hutch exec VM -- true` answering (the agent is back). Prints medians; asserts nothing; skips with a
# reason if libvirt can't be used here.
. "$(dirname "$0")/lib.sh"
bench_init "$@"

N=$BENCH_RUNS
URI=qemu:///session
VM=s
DOM=hutch-$VM

skip() { bench_skip "snapshot-libvirt (issue 14): hutch snapshot vs virsh snapshot" "libvirt comparison" "$*"; }

command -v virsh >/dev/null || skip "virsh is not installed (apt-get install libvirt-clients libvirt-daemon-driver-qemu)"

# A private libvirt session (as bench/virsh.sh): it neither sees nor touches the user's domains.
LV=$BENCH_TMP/lv
mkdir -p "$LV/config" "$LV/cache" "$LV/data" "$LV/run"
chmod 700 "$LV/run"
export XDG_CONFIG_HOME=$LV/config XDG_CACHE_HOME=$LV/cache XDG_DATA_HOME=$LV/data XDG_RUNTIME_DIR=$LV/run
V() { virsh -q -c "$URI" "$@"; }
BENCH_CLEANUP='"$HUTCH" destroy --force "$VM"; "$HUTCH" destroy --force q;
	[ -s "$LV/run/libvirt/libvirtd.pid" ] && kill "$(cat "$LV/run/libvirt/libvirtd.pid")"'
if ! why=$(timeout 60 virsh -c "$URI" uri 2>&1); then
	skip "cannot connect to $URI: $(echo "$why" | head -n1)"
fi

bench_hutch_or_die create "$VM" --template micro --backend libvirt
bench_hutch_or_die start "$VM" --timeout 600
bench_hutch_or_die create q --template micro
bench_hutch_or_die start q --timeout 600

exec_ok() { "$HUTCH" exec "$1" -- true >/dev/null 2>&1; }
# restore then exec, as one timed step
hutch_restore() { "$HUTCH" snapshot restore "$1" "$2" >/dev/null && exec_ok "$1"; }
virsh_restore() { V snapshot-revert "$DOM" "$1" --running >/dev/null && exec_ok "$VM"; }

HS=() HR=() LS=() LR=() QS=() QR=()
for ((k = 0; k < N; k++)); do
	bench_time "$HUTCH" snapshot save "$VM" "h$k" >/dev/null || bench_die "hutch snapshot save failed"
	HS+=("$ELAPSED_MS")
	bench_time hutch_restore "$VM" "h$k" || bench_die "hutch snapshot restore failed"
	HR+=("$ELAPSED_MS")
	bench_time V snapshot-create-as "$DOM" "v$k" >/dev/null || bench_die "virsh snapshot-create-as failed"
	LS+=("$ELAPSED_MS")
	bench_time virsh_restore "v$k" || bench_die "virsh snapshot-revert failed"
	LR+=("$ELAPSED_MS")
	bench_time "$HUTCH" snapshot save q "h$k" >/dev/null || bench_die "hutch snapshot save (qemu backend) failed"
	QS+=("$ELAPSED_MS")
	bench_time hutch_restore q "h$k" || bench_die "hutch snapshot restore (qemu backend) failed"
	QR+=("$ELAPSED_MS")
done

hs=$(bench_median "${HS[@]}") hr=$(bench_median "${HR[@]}")
ls=$(bench_median "${LS[@]}") lr=$(bench_median "${LR[@]}")
qs=$(bench_median "${QS[@]}") qr=$(bench_median "${QR[@]}")
bench_title "snapshot-libvirt (issue 14): \`hutch snapshot\` on libvirt vs virsh, same running micro VM (512 MiB)"
echo "libvirt $(virsh --version), $URI (private session daemon). $N runs, each a new tag on every"
echo "side. Restore = the command, then \`hutch exec VM -- true\` answering. Wall-clock ms, medians."
echo
bench_header "step" "hutch (libvirt)" "virsh" "ratio hutch / virsh" "hutch (qemu backend)"
bench_row "**save** disk+RAM" "$hs" "$ls" "**$(bench_ratio "$hs" "$ls")**" "$qs"
bench_row "**restore** until exec answers" "$hr" "$lr" "**$(bench_ratio "$hr" "$lr")**" "$qr"
bench_summary "libvirt: snapshot save" "$hs ms" "virsh $ls ms" "$(bench_ratio "$hs" "$ls")" "–"
bench_summary "libvirt: snapshot restore until exec" "$hr ms" "virsh $lr ms" "$(bench_ratio "$hr" "$lr")" "–"
echo
bench_load_note
