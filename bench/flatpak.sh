#!/bin/bash
# bench/flatpak.sh: a flatpak app in a disposable VM (`hutch run NAME --flatpak APP`) against
# `flatpak run APP` on the host (the floor), and against `hutch run --rm NAME -- true` (the same
# disposable VM without flatpak: what the VM itself costs). The app is org.test.Hello from
# tests/integration/flatpak-test-repo.sh (a busybox runtime, no network); the VM's image is the
# tests' guest root filesystem with flatpak and bubblewrap (the newest
# /var/cache/hutch-test/guest-rootfs-*.tar, made by tests/fixtures/guest-rootfs.sh; or
# BENCH_GUEST_ROOTFS). Times to the app's first output line and to exit, interleaved; prints
# medians and ratios; asserts nothing. Each run boots a VM: BENCH_RUNS=3 is plenty under TCG.
. "$(dirname "$0")/lib.sh"
bench_init "$@"

N=$BENCH_RUNS
rootfs=${BENCH_GUEST_ROOTFS:-$(ls -t /var/cache/hutch-test/guest-rootfs-*.tar 2>/dev/null | head -n 1)}
[ -r "$rootfs" ] || bench_die "no guest root filesystem (run tests/fixtures/guest-rootfs.sh as root, or set BENCH_GUEST_ROOTFS)"
command -v flatpak >/dev/null || bench_die "flatpak not found (apt-get install flatpak)"
tests=$BENCH_REPO/tests/integration
app=org.test.Hello
export HOME=$BENCH_TMP/home
unset FLATPAK_USER_DIR FLATPAK_SYSTEM_DIR XDG_DATA_HOME
mkdir -p "$HOME"
"$tests/flatpak-test-repo.sh" "$BENCH_TMP/repo" >>"$BENCH_TMP/setup.log" 2>&1 || bench_die "flatpak-test-repo.sh failed"
flatpak --user remote-add --no-gpg-verify test-repo "$BENCH_TMP/repo" >>"$BENCH_TMP/setup.log" 2>&1 ||
	bench_die "remote-add failed"
# shellcheck disable=SC2016 # expanded by the inner shell
dbus-run-session -- sh -c 'DBUS_SYSTEM_BUS_ADDRESS=$DBUS_SESSION_BUS_ADDRESS flatpak --user install -y test-repo '"$app" \
	>>"$BENCH_TMP/setup.log" 2>&1 || bench_die "flatpak install failed (see $BENCH_TMP/setup.log)"
python3 "$tests/oci-image.py" "$rootfs" "$BENCH_TMP/img" --no-kernel >>"$BENCH_TMP/setup.log" 2>&1 ||
	bench_die "oci-image.py failed"
"$HUTCH" create fp --oci "oci:$BENCH_TMP/img/layout:test" -d 4G >>"$BENCH_TMP/setup.log" 2>&1 || bench_die "create failed"

# first_line CMD...: FIRST_MS (to the first line of stdout) and ELAPSED_MS (to exit)
first_line() {
	local t0
	bench_now
	t0=$NOW_US
	exec 3< <("$@" 2>>"$BENCH_TMP/run.log")
	IFS= read -r _ <&3 || bench_die "no output from: $* (run.log: $(tail -n 3 "$BENCH_TMP/run.log" | tr '\n' ' '))"
	bench_now
	FIRST_MS=$(bench_us_to_ms $((NOW_US - t0)))
	cat <&3 >/dev/null
	exec 3<&-
	wait $! || bench_die "failed: $*"
	bench_now
	ELAPSED_MS=$(bench_us_to_ms $((NOW_US - t0)))
}

HOST=() VM=() FP_FIRST=() FP=()
for ((i = 0; i < N; i++)); do
	first_line flatpak run "$app"
	HOST+=("$FIRST_MS")
	bench_time "$HUTCH" run --rm --cold fp -- true >>"$BENCH_TMP/run.log" 2>&1 || bench_die "run --rm failed"
	VM+=("$ELAPSED_MS")
	first_line "$HUTCH" run fp --flatpak "$app"
	FP_FIRST+=("$FIRST_MS")
	FP+=("$ELAPSED_MS")
done

h=$(bench_median "${HOST[@]}") v=$(bench_median "${VM[@]}")
f1=$(bench_median "${FP_FIRST[@]}") f=$(bench_median "${FP[@]}")
bench_title "flatpak apps in disposable VMs (Debian image with flatpak, $(bench_accel))"
echo "$N runs each, interleaved; wall-clock ms."
echo
bench_header "what" "median ms" "p90 ms" "ratio to the floor"
bench_row "floor: \`flatpak run $app\` on the host, to its output" "$h" "$(bench_p90 "${HOST[@]}")" "1.00"
bench_row "\`hutch run --rm --cold fp -- true\` (the VM alone)" "$v" "$(bench_p90 "${VM[@]}")" "$(bench_ratio "$v" "$h")"
bench_row "**\`hutch run fp --flatpak $app\`, to its output**" "$f1" "$(bench_p90 "${FP_FIRST[@]}")" "**$(bench_ratio "$f1" "$h")**"
bench_row "\`hutch run fp --flatpak $app\`, to exit (VM gone)" "$f" "$(bench_p90 "${FP[@]}")" "$(bench_ratio "$f" "$h") ($(bench_ratio "$f" "$v")x the VM alone)"
bench_load_note
