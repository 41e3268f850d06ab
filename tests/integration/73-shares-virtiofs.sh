#!/usr/bin/env bash
# virtiofs shares. Where virtiofsd (/usr/libexec/virtiofsd or HUTCH_VIRTIOFSD) is installed and user
# namespaces work, or QEMU's C virtiofsd (/usr/lib/qemu/virtiofsd, Debian 12's only one) with uidmap
# (`unshare --map-auto --map-root-user` works), a real micro VM mounts a read-write share over
# virtiofs, inspect says so, the guest's write reaches the host as the user's file, and the virtiofsd
# goes with the VM; with the C one, via: auto stays on 9p and says why. Everywhere else: via:
# virtiofs without virtiofsd is refused at start before QEMU runs, and via: auto falls back to 9p
# and says why.
# once
# timeout: 600
. "$(dirname "$0")/lib.sh"
exec </dev/null

vfsd=${HUTCH_VIRTIOFSD:-/usr/libexec/virtiofsd}
c_vfsd=
if [ -z "${HUTCH_VIRTIOFSD:-}" ] && [ ! -x "$vfsd" ] && [ -x /usr/lib/qemu/virtiofsd ] &&
	unshare --map-auto --map-root-user true 2>/dev/null; then
	vfsd=/usr/lib/qemu/virtiofsd
	c_vfsd=1
fi
mkdir -p "$T/data"
echo host-data >"$T/data/f"

if [ -x "$vfsd" ] && unshare -U true 2>/dev/null; then
	cat >"$T/vf.yml" <<EOF2
vf:
  source: {template: micro}
  shares:
    data: {path: $T/data, mount: /mnt/data, via: virtiofs}
    other: {path: $T/data, mount: /mnt/other}
EOF2
	run hutch create vf --from "$T/vf.yml"
	run hutch start vf
	is "$RC" 0 "start with a virtiofs share"
	run hutch inspect vf --json
	is "$(json_get "$OUT" 'j["shares"][0]["via"] + " " + j["shares"][0]["state"]')" "virtiofs mounted" \
		"inspect: via virtiofs, mounted"
	run hutch exec vf -- sh -c 'grep " /mnt/data " /proc/mounts | cut -d" " -f3; cat /mnt/data/f; echo guest > /mnt/data/g'
	is "$OUT" "$(printf 'virtiofs\nhost-data')" "the guest reads the host file over virtiofs"
	is "$(cat "$T/data/g" 2>&1)" guest "the guest's write reached the host"
	is "$(stat -c %u "$T/data/g")" "$(id -u)" "as the user's own file"
	if [ -n "$c_vfsd" ]; then
		run hutch inspect vf --json
		is "$(json_get "$OUT" '[s["via"] for s in j["shares"] if s["tag"]=="other"][0]')" 9p \
			"with QEMU's C virtiofsd, via: auto stays on 9p"
		like "$(json_get "$OUT" '[s["why"] for s in j["shares"] if s["tag"]=="other"][0]')" "QEMU's C one" \
			"and says why"
	fi
	ok "virtiofsd runs while the VM does" test -n "$(pids_of_home virtiofsd)"
	run hutch stop vf
	ok "virtiofsd is gone with the VM" wait_until 10 test -z "$(pids_of_home virtiofsd)"
else
	echo "# SKIP the real virtiofs boot: no virtiofsd at $vfsd or no user namespaces (Debian 12 main has no virtiofsd package)"
	cat >"$T/vf.yml" <<EOF2
vf:
  source: {template: micro}
  shares:
    data: {path: $T/data, mount: /mnt/data, via: virtiofs}
va:
  source: {template: micro}
  shares:
    data: {path: $T/data, mount: /mnt/data}
EOF2
	run hutch create vf --from "$T/vf.yml"
	run hutch start vf
	isnt_rc=$RC
	ok "via: virtiofs without virtiofsd: start fails" test "$isnt_rc" -ne 0
	like "$ERR" "share 'data' of VM 'vf' asks for virtiofs, but virtiofsd is not installed" "the error says why"
	is "$(qemu_count)" 0 "no QEMU was started"
	run hutch create va --from "$T/vf.yml"
	run hutch inspect va --json
	is "$(json_get "$OUT" 'j["shares"][0]["via"]')" 9p "via: auto falls back to 9p"
	like "$(json_get "$OUT" 'j["shares"][0]["why"]')" 'virtiofsd is not installed' "inspect says why"
fi

# read-only shares stay on 9p with virtiofsd 1.5 (no --readonly): auto never picks virtiofs for them
cat >"$T/ro.yml" <<EOF2
vr:
  source: {template: micro}
  shares:
    data: {path: $T/data, mount: /mnt/data, readonly: true}
EOF2
run hutch create vr --from "$T/ro.yml"
run hutch inspect vr --json
if [ -x "$vfsd" ] && "$vfsd" --help 2>&1 | grep -q -- --readonly; then
	is "$(json_get "$OUT" 'j["shares"][0]["via"]')" virtiofs "a virtiofsd with --readonly carries read-only shares"
else
	is "$(json_get "$OUT" 'j["shares"][0]["via"]')" 9p "a read-only share stays on 9p"
fi

done_testing
