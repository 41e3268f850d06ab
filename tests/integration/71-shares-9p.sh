#!/usr/bin/env bash
# Shares over 9p in a real micro VM: a read-only share is read-only for real (EROFS even after a
# remount, host file unchanged), a read-write one keeps guest ownership and modes (in xattrs on the
# host), guest-made symlinks work, and no symlink leads out of the share. Bad host paths fail start
# before QEMU runs; a file system without user xattrs falls back to security_model=none with a warning.
# once
# timeout: 900
. "$(dirname "$0")/lib.sh"
exec </dev/null

isnt()
{
	if [ "$1" != "$2" ]; then pass "$3"; else fail "$3" "got '$1', expected anything else"; fi
}

S=$T/shares
mkdir -p "$S/ro/sub" "$S/rw" "$S/flag"
echo ro-content >"$S/ro/hello.txt"
echo sub >"$S/ro/sub/f"
chmod 0640 "$S/ro/sub/f"
echo HOSTSECRET >"$S/secret.txt"
ln -s "$S/secret.txt" "$S/rw/out-abs"
ln -s ../secret.txt "$S/rw/out-rel"
echo flagged >"$S/flag/f"

cat >"$T/vms.yml" <<EOF
sh9:
  source: {template: micro}
  shares:
    ro: {path: $S/ro, mount: /mnt/ro, readonly: true, via: 9p}
    rw: {path: $S/rw, mount: /srv/deep/rw}
EOF

run hutch create sh9 --from "$T/vms.yml" --share "$S/flag:/mnt/flag:ro"
is "$RC" 0 "create with spec shares and --share HOST:GUEST:ro"
run hutch inspect sh9 --json
like "$OUT" '"tag": *"flag"' "--share is named after the guest dir"

run hutch start sh9
is "$RC" 0 "start a micro VM with three 9p shares"
unlike "$ERR" 'not mounted' "start reports no mount failure"

run hutch inspect sh9 --json
is "$(json_get "$OUT" 'len([s for s in j["shares"] if s["state"] == "mounted"])')" 3 \
	"inspect: all three shares mounted"
is "$(json_get "$OUT" '[s["via"] for s in j["shares"] if s["tag"] == "ro"][0]')" 9p "inspect: via 9p"
is "$(json_get "$OUT" '[s["security_model"] for s in j["shares"] if s["tag"] == "rw"][0]')" \
	mapped-xattr "inspect: security_model mapped-xattr"
run hutch inspect sh9
like "$OUT" 'rw +.*/rw -> /srv/deep/rw \(rw, 9p mapped-xattr.*: mounted' "inspect text names the share, its transport and state"

# ---- read-only is real ----
run hutch exec sh9 -- cat /mnt/ro/hello.txt /mnt/ro/sub/f /mnt/flag/f
is "$OUT" "$(printf 'ro-content\nsub\nflagged')" "the guest reads the read-only shares"
run hutch exec sh9 -- sh -c 'echo x > /mnt/ro/new'
like "$ERR" 'Read-only file system' "creating a file in a read-only share: EROFS"
run hutch exec sh9 -- sh -c 'mount -o remount,rw /mnt/ro; echo changed > /mnt/ro/hello.txt'
like "$ERR" 'Read-only file system' "overwriting after a guest remount rw: still EROFS (QEMU's readonly=on)"
is "$(cat "$S/ro/hello.txt")" ro-content "the host file is unchanged"
ok "no file appeared on the host" test ! -e "$S/ro/new"
run hutch exec sh9 -- sh -c 'rm /mnt/flag/f'
isnt "$RC" 0 "removing from a --share :ro share fails"
ok "the host file of the :ro --share is still there" test -f "$S/flag/f"

# ---- read-write: data, ownership, modes ----
run hutch exec sh9 -- sh -c 'echo from-guest > /srv/deep/rw/g.txt && chown 1234:5678 /srv/deep/rw/g.txt &&
	chmod 0640 /srv/deep/rw/g.txt && mkdir -m 0700 /srv/deep/rw/d && stat -c "%u:%g %a" /srv/deep/rw/g.txt /srv/deep/rw/d'
is "$OUT" "$(printf '1234:5678 640\n0:0 700')" "guest ownership and modes stick in the guest"
is "$(cat "$S/rw/g.txt")" from-guest "the guest's file reached the host"
is "$(stat -c %u "$S/rw/g.txt")" "$(id -u)" "on the host the file stays the user's own"
uid_x=$(python3 -c 'import os,sys,struct; print(struct.unpack("<I", os.getxattr(sys.argv[1], "user.virtfs.uid"))[0])' "$S/rw/g.txt" 2>&1)
is "$uid_x" 1234 "the guest owner is kept in user.virtfs.uid on the host"
chmod 0604 "$S/rw/g.txt"
echo host-made >"$S/rw/h.txt"
chmod 0751 "$S/rw/h.txt"
run hutch exec sh9 -- stat -c '%a %u' /srv/deep/rw/h.txt
is "$OUT" "751 $(id -u)" "a host-made file shows its host mode and owner in the guest"

# ---- symlinks ----
run hutch exec sh9 -- sh -c 'cd /srv/deep/rw && ln -s g.txt glink && readlink glink && cat glink'
is "$OUT" "$(printf 'g.txt\nfrom-guest')" "a guest-made symlink inside the share resolves"
run hutch exec sh9 -- sh -c "ln -s $S/secret.txt /srv/deep/rw/esc && ln -s ../../../../secret.txt /srv/deep/rw/esc2; \
	cat /srv/deep/rw/esc /srv/deep/rw/esc2 /srv/deep/rw/out-abs /srv/deep/rw/out-rel 2>&1; true"
unlike "$OUT" 'HOSTSECRET' "no symlink (guest-made or host-made, absolute or ../) reads the host file outside the share"
like "$OUT" 'No such file|Too many levels' "links out of the share fail in the guest"

run hutch stop sh9
is "$RC" 0 "stop"

# ---- host path errors at start, before QEMU runs ----
mkdir -p "$S/locked"
chmod 000 "$S/locked"
echo file >"$S/notadir"
n=0
for bad in "$S/missing:does not exist" "$S/notadir:is not a directory" "$S/locked:is not readable"; do
	n=$((n + 1))
	path=${bad%%:*} why=${bad#*:}
	cat >"$T/bad$n.yml" <<EOF
bad$n:
  source: {template: micro}
  shares:
    docs: {path: $path}
EOF
	run hutch create "bad$n" --from "$T/bad$n.yml"
	run hutch start "bad$n"
	isnt "$RC" 0 "start with a host path that $why fails"
	like "$ERR" "share 'docs' of VM 'bad$n': host path '$path' $why" "the error names the VM, the share and the cause ($why)"
	is "$(qemu_count)" 0 "no QEMU was started for bad$n"
done
chmod 755 "$S/locked"

# ---- spec errors ----
printf 'e:\n  shares:\n    d: {path: /x, via: nfs}\n' >"$T/e.yml"
run hutch create e --from "$T/e.yml"
like "$ERR" 'e.yml:3: shares.d.via: expected auto, 9p or virtiofs' "a bad via names file:line: key"
run hutch create e2 -t micro --share "/x:relative"
like "$ERR" "--share '/x:relative': the guest path must be absolute" "a bad --share is refused"

# ---- no user xattrs (procfs): 9p falls back to security_model=none, with a warning ----
cat >"$T/px.yml" <<EOF
px:
  source: {template: micro}
  shares:
    k: {path: /proc/sys/kernel, mount: /mnt/k, via: 9p}
EOF
run hutch create px --from "$T/px.yml"
run hutch start px
is "$RC" 0 "start with a share on a file system without user xattrs"
like "$ERR" "security_model=none" "start warns about the fallback"
run hutch inspect px --json
is "$(json_get "$OUT" 'j["shares"][0]["security_model"]')" none "inspect: security_model none"
is "$(json_get "$OUT" 'j["shares"][0]["state"]')" mounted "the fallback share is mounted"
run hutch exec px -- sh -c 'cat /mnt/k/ostype'
is "$OUT" Linux "the guest reads through the fallback share"
run hutch stop px

done_testing
