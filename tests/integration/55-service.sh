#!/usr/bin/env bash
# service render: the rendered supervisord.conf runs the real libvirt session daemon under a real
# supervisord as this unprivileged user; virsh -c qemu:///session reaches that daemon (autospawn off),
# supervisord restarts it when it dies, and after `supervisorctl shutdown` nothing is left. The
# systemd rendering, run as the script it is, writes user units that `systemd-analyze --user verify`
# accepts (there is no running systemd here to enable them). Boots no VM.
. "$(dirname "$0")/lib.sh"

# A short private runtime dir (sun_path), and libvirt's config, cache and data kept under $T.
R=$(mktemp -d /tmp/hsv.XXXXXX)
chmod 700 "$R"
export XDG_RUNTIME_DIR=$R XDG_CONFIG_HOME=$T/xdg/config XDG_CACHE_HOME=$T/xdg/cache XDG_DATA_HOME=$T/xdg/data
SUP=
CONF=$T/supervisord.conf

# our_daemons: pids of this user's libvirt daemons that run in this test's runtime dir
our_daemons()
{
	local p n
	for p in $(for n in libvirtd virtlogd virtqemud virtnetworkd; do pgrep -u "$(id -u)" -x "$n"; done); do
		if tr '\0' '\n' 2>/dev/null <"/proc/$p/environ" | grep -qxF "XDG_RUNTIME_DIR=$R"; then
			echo "$p"
		fi
	done
}

svc_cleanup()
{
	local rc=$? p
	if [ -n "$SUP" ] && kill -0 "$SUP" 2>/dev/null; then
		kill "$SUP" 2>/dev/null
		for _ in $(seq 50); do
			kill -0 "$SUP" 2>/dev/null || break
			sleep 0.2
		done
		kill -9 "$SUP" 2>/dev/null
	fi
	for p in $(our_daemons); do
		kill -9 "$p" 2>/dev/null
	done
	rm -rf "$R"
	(exit $rc)
	_cleanup
}
trap svc_cleanup EXIT

sctl()
{
	timeout -k 5 30 supervisorctl -c "$CONF" "$@"
}

# ---- usage and errors (no daemon needed) ----
run hutch service render
is "$RC" 2 "render without --init exits 2"
like "$ERR" '--init is required' "render without --init says --init is required"
run hutch service render --init upstart
is "$RC" 2 "render --init upstart exits 2"
run hutch service render --init systemd --full
is "$RC" 2 "render --full with systemd exits 2"

mkdir -p "$T/empty"
run env HUTCH_ROOT_PREFIX="$T/empty" "$HUTCH" service render --init supervisord
is "$RC" 1 "no libvirt daemon installed exits 1"
contains "$ERR" "apt-get install libvirt-daemon libvirt-daemon-driver-qemu" "the error names the Debian packages"

# a split-daemon install, faked under the test-only root prefix, renders virtqemud and virtnetworkd
for d in virtqemud virtnetworkd; do
	mkdir -p "$T/split/usr/sbin" && printf '' >"$T/split/usr/sbin/$d" && chmod 755 "$T/split/usr/sbin/$d"
done
run env HUTCH_ROOT_PREFIX="$T/split" "$HUTCH" service render --init supervisord
is "$RC" 0 "render for a split-daemon install exits 0"
contains "$OUT" "command=/usr/sbin/virtqemud --timeout 0" "split: virtqemud runs in the foreground"
contains "$OUT" "[program:virtnetworkd]" "split: virtnetworkd has a program"
unlike "$OUT" 'libvirtd' "split: no libvirtd"

# ---- this host ----
libvirtd=$(PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin command -v libvirtd)
if [ -z "$libvirtd" ] || ! command -v supervisord >/dev/null || ! command -v virsh >/dev/null; then
	pass "supervisord runs libvirtd # SKIP needs libvirtd, supervisord and virsh"
	done_testing
	exit
fi

run hutch service render --init supervisord
is "$RC" 0 "render --init supervisord exits 0"
contains "$OUT" "command=$libvirtd --timeout 0" "the program runs the installed libvirtd in the foreground"
unlike "$OUT" '^\[supervisord\]' "without --full only [program:] blocks are printed"
fragment=$OUT

run hutch service render --init supervisord --full
is "$RC" 0 "render --full exits 0"
contains "$OUT" "nodaemon=true" "--full: supervisord stays in the foreground"
contains "$OUT" "file=$R/hutch-supervisord.sock" "--full: supervisorctl's socket is in XDG_RUNTIME_DIR"
programs=$(printf '%s\n' "$fragment" | sed -n '/^\[program:/,$p')
ok "--full has the same [program:] blocks" test -n "$programs" -a "${OUT#*"$programs"}" != "$OUT"
printf '%s\n' "$OUT" >"$CONF"

setsid supervisord -c "$CONF" >"$T/supervisord.log" 2>&1 </dev/null &
SUP=$!
libvirtd_running()
{
	sctl status libvirtd 2>/dev/null | grep -q RUNNING
}
ok "supervisorctl status says libvirtd is RUNNING" wait_until 60 libvirtd_running
run sctl status
like "$OUT" '^virtlogd +RUNNING' "virtlogd runs beside it (no daemon autospawns its own)"
pid=$(sctl pid libvirtd)
like "$pid" '^[0-9]+$' "supervisorctl pid libvirtd is a pid"
is "$(awk '{print $4}' "/proc/$pid/stat" 2>/dev/null)" "$SUP" "libvirtd is supervisord's child"
is "$(readlink "/proc/$pid/exe")" "$libvirtd" "the child is $libvirtd"
ok "the session socket appears" wait_until 30 test -S "$R/libvirt/libvirt-sock"

# libvirtd_holds_sock PID: PID has a socket bound at $R/libvirt/libvirt-sock open
libvirtd_holds_sock()
{
	local inodes f
	inodes=$(awk -v p="$R/libvirt/libvirt-sock" '$8 == p {print "socket:[" $7 "]"}' /proc/net/unix)
	for f in "/proc/$1/fd/"*; do
		printf '%s\n' "$inodes" | grep -qxF -- "$(readlink "$f")" && return 0
	done
	return 1
}
ok "the supervised libvirtd holds the session socket" libvirtd_holds_sock "$pid"

# LIBVIRT_AUTOSTART=0: virsh may not spawn a daemon of its own, so it can only reach the supervised one
run env LIBVIRT_AUTOSTART=0 timeout 60 virsh -c qemu:///session list --all
is "$RC" 0 "virsh -c qemu:///session list works through the supervised daemon"
like "$OUT" '^ *Id +Name +State' "virsh lists domains"
run env LIBVIRT_AUTOSTART=0 timeout 120 virsh -c qemu:///session domcapabilities
like "$OUT" '<domain>(qemu|kvm)</domain>' "domcapabilities names the QEMU domain type"
is "$(our_daemons | grep -c "^$pid\$")" 1 "virsh spawned no daemon: the supervised libvirtd is still the one"
is "$(pgrep -u "$(id -u)" -x libvirtd | while read -r p; do
	tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qxF "XDG_RUNTIME_DIR=$R" && echo "$p"
done | wc -l)" 1 "exactly one libvirtd runs for this runtime dir"

# autorestart=true: a killed daemon comes back
kill -9 "$pid"
restarted()
{
	local p
	p=$(sctl pid libvirtd 2>/dev/null)
	[ -n "$p" ] && [ "$p" != 0 ] && [ "$p" != "$pid" ]
}
ok "supervisord restarts a killed libvirtd" wait_until 60 restarted
virsh_list()
{
	LIBVIRT_AUTOSTART=0 timeout 30 virsh -c qemu:///session list >/dev/null 2>&1
}
ok "virsh works after the restart" wait_until 30 virsh_list

run sctl shutdown
is "$RC" 0 "supervisorctl shutdown exits 0"
sup_gone()
{
	! kill -0 "$SUP" 2>/dev/null
}
ok "supervisord exits" wait_until 60 sup_gone
wait "$SUP"
is "$?" 0 "supervisord exit status 0"
SUP=
is "$(our_daemons | wc -l)" 0 "no libvirt daemon is left running"

# ---- systemd: the rendered script writes user units; systemd-analyze verifies them ----
run hutch service render --init systemd
is "$RC" 0 "render --init systemd exits 0"
contains "$OUT" "systemctl --user enable --now" "systemd: units are enabled with systemctl --user"
printf '%s\n' "$OUT" >"$T/systemd.sh"
run env XDG_CONFIG_HOME="$T/sdcfg" sh "$T/systemd.sh"
units=$T/sdcfg/systemd/user
ok "the script wrote libvirtd.socket and libvirtd.service" test -s "$units/libvirtd.socket" -a -s "$units/libvirtd.service"
contains "$(cat "$units/libvirtd.service")" "ExecStart=$libvirtd --timeout 120" "libvirtd.service runs the installed libvirtd"
contains "$(cat "$units/libvirtd.socket")" "ListenStream=%t/libvirt/libvirt-sock" "libvirtd.socket listens at the session socket"
if command -v systemd-analyze >/dev/null; then
	run systemd-analyze --user verify "$units"/*.socket "$units"/*.service
	is "$RC" 0 "systemd-analyze --user verify accepts the units"
	is "$ERR" "" "systemd-analyze --user verify has no complaint"
else
	pass "systemd-analyze verify # SKIP no systemd-analyze"
	pass "systemd-analyze verify # SKIP no systemd-analyze"
fi

done_testing
