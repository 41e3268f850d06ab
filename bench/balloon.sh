#!/bin/bash
# bench/balloon.sh (issue 13): an idle micro VM's host memory with free-page reporting (hutch's
# default balloon) against the same VM with balloon: false, the named peer. QEMU's VmRSS and Pss are
# read twice: idle after boot, and idle again after the guest (1 GiB) did what guests do, touched
# memory and let it go (BENCH_CHURN_MIB in its RAM, then freed); each idle is BENCH_IDLE_S seconds,
# both VMs side by side. Asserts nothing.
. "$(dirname "$0")/lib.sh"
bench_init "$@"

CHURN=${BENCH_CHURN_MIB:-400}
IDLE=${BENCH_IDLE_S:-20}

pss_kb() { awk '/^Pss:/ { print $2 }' "/proc/$1/smaps_rollup" 2>/dev/null; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

cat >"$BENCH_TMP/vms.yml" <<Y
fpr:
  source: {template: micro}
  memory: 1G
flat:
  source: {template: micro}
  memory: 1G
  balloon: false
Y
declare -A RSS PSS BRSS BPSS
qemu_of() { local m; m=$(bench_monitor_pid "$1") || bench_die "no monitor for $1"; bench_child_pid "$m" || bench_die "no QEMU under the monitor of $1"; }
for vm in fpr flat; do
	bench_hutch_or_die create "$vm" --from "$BENCH_TMP/vms.yml"
done
for run in $(seq "$BENCH_RUNS"); do
	for vm in fpr flat; do
		bench_hutch_or_die start "$vm"
	done
	sleep "$IDLE"
	for vm in fpr flat; do
		q=$(qemu_of "$vm")
		BRSS[$vm]+="$(bench_rss_kb "$q") "
		BPSS[$vm]+="$(pss_kb "$q") "
	done
	for vm in fpr flat; do
		"$HUTCH" exec "$vm" -- sh -c "dd if=/dev/zero of=/churn bs=1M count=$CHURN 2>/dev/null && sync && rm /churn" \
			>>"$BENCH_TMP/hutch.log" 2>&1 || bench_die "churn in $vm failed"
	done
	sleep "$IDLE" # both idle for the same time, side by side
	for vm in fpr flat; do
		q=$(qemu_of "$vm")
		RSS[$vm]+="$(bench_rss_kb "$q") "
		PSS[$vm]+="$(pss_kb "$q") "
		bench_hutch_or_die stop "$vm"
	done
done

# shellcheck disable=SC2086
fr=$(bench_median ${RSS[fpr]}) fp=$(bench_median ${PSS[fpr]}) lr=$(bench_median ${RSS[flat]}) lp=$(bench_median ${PSS[flat]})
# shellcheck disable=SC2086
br=$(bench_median ${BRSS[fpr]}) bp=$(bench_median ${BPSS[fpr]}) blr=$(bench_median ${BRSS[flat]}) blp=$(bench_median ${BPSS[flat]})
bench_title "balloon (issue 13): idle micro VM host memory, free-page reporting vs none"
echo "micro VM, memory 1G, $(bench_accel); idle ${IDLE} s after boot, then again after the guest wrote"
echo "${CHURN} MiB into its RAM and freed it; QEMU's memory, median of $BENCH_RUNS run(s); KiB → MiB."
echo
bench_header "VM" "idle after boot: VmRSS / Pss MiB" "idle after the churn: VmRSS / Pss MiB" "ratio to peer (RSS after churn)"
bench_row "**hutch default** (virtio-balloon, free-page-reporting=on)" "$(mib "$br") / $(mib "$bp")" "$(mib "$fr") / $(mib "$fp")" "**$(bench_ratio "$fr" "$lr")**"
bench_row "peer: balloon: false (no free-page reporting)" "$(mib "$blr") / $(mib "$blp")" "$(mib "$lr") / $(mib "$lp")" "1.00"
bench_summary "idle micro VM QEMU RSS after a ${CHURN} MiB churn" "$(mib "$fr") MiB (Pss $(mib "$fp"))" \
	"balloon: false $(mib "$lr") MiB" "$(bench_ratio "$fr" "$lr")" "–"
echo
bench_load_note
