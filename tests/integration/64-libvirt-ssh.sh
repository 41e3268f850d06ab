#!/usr/bin/env bash
# The libvirt backend over a remote URI: qemu+ssh://USER@127.0.0.1:PORT/session against a real
# sshd this test starts on loopback as the test user (its own host key, its own authorized key, its
# own known_hosts, checked strictly). create, start (HELLO through virDomainOpenChannel over the ssh
# connection), exec, cp, list, stop and destroy all go through it; a connection lost during exec is a
# clear error (exit 255) and the VM keeps running.
# once
# timeout: 900
. "$(dirname "$0")/lib.sh"
exec </dev/null

for p in virsh /usr/sbin/sshd ssh ssh-keygen virt-ssh-helper; do
	command -v "$p" >/dev/null || {
		fail "$p is installed" "install openssh-server openssh-client libvirt-clients (scripts/deps.sh)"
		done_testing
	}
done

S=$T/ssh
mkdir -p "$S"
chmod 700 "$S"
ssh-keygen -q -t ed25519 -N '' -C hutch-test -f "$S/key"
ssh-keygen -q -t ed25519 -N '' -C hutch-test-host -f "$S/hostkey"
cp "$S/key.pub" "$S/authorized_keys"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$S/sshd_config" <<EOF
Port $PORT
ListenAddress 127.0.0.1
HostKey $S/hostkey
AuthorizedKeysFile $S/authorized_keys
PidFile $S/sshd.pid
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
EOF
/usr/sbin/sshd -f "$S/sshd_config" -E "$S/sshd.log"
wait_until 10 test -s "$S/sshd.pid"
sshd_pid=$(cat "$S/sshd.pid")
trap 'kill "$sshd_pid" 2>/dev/null; _cleanup' EXIT
echo "[127.0.0.1]:$PORT $(cut -d' ' -f1,2 "$S/hostkey.pub")" >"$S/known_hosts"
# libvirt runs this as its ssh: our own known_hosts, checked strictly, no prompts
cat >"$S/ssh" <<EOF
#!/bin/sh
exec ssh -o UserKnownHostsFile=$S/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes "\$@"
EOF
chmod 755 "$S/ssh"
URI="qemu+ssh://$(id -un)@127.0.0.1:$PORT/session?keyfile=$S/key&command=$S/ssh&no_tty=1"
vsh() { timeout 60 virsh -q -c qemu:///session "$@"; }
N=lvs$$
D=hutch-$N

run hutch create "$N" --template micro --connect "$URI"
is "$RC" 0 "create --connect qemu+ssh://USER@127.0.0.1:PORT/session"
like "$(vsh list --all --name)" "^$D\$" "the domain is defined on the far side"
run hutch inspect "$N"
like "$OUT" "uri: +qemu\+ssh://" "inspect shows the ssh URI"

run hutch start "$N" --timeout 300
is "$RC" 0 "start over ssh, until the agent's HELLO through the channel"
run hutch list
like "$OUT" "^$N +running +libvirt" "list: running, through the ssh URI"
run hutch exec "$N" -- uname -n
is "$OUT" "$N" "exec over virDomainOpenChannel through ssh"
printf 'over ssh\n' >"$T/f"
run hutch cp "$T/f" "$N:/tmp/f"
is "$RC" 0 "cp in over ssh"
run hutch exec "$N" -- cat /tmp/f
is "$OUT" "over ssh" "... the bytes arrived"

# the connection goes away mid-exec: the ssh client libvirt spawned for that hutch is killed
ssh_under() {
	local c
	for c in $(pgrep -P "$1"); do
		[ "$(cat /proc/"$c"/comm 2>/dev/null)" = ssh ] && echo "$c"
		ssh_under "$c"
	done
}
hutch exec "$N" -- sh -c 'echo up; sleep 60' >"$T/lost.out" 2>"$T/lost.err" &
ex=$!
wait_until 60 grep -q up "$T/lost.out"
for c in $(ssh_under "$ex"); do
	kill "$c"
done
wait "$ex"
RC=$?
is "$RC" 255 "exec whose connection is lost exits 255"
like "$(cat "$T/lost.err")" "lost|closed|connection" "... with a clear error"
like "$(vsh domstate "$D")" "running" "... and the VM keeps running"
run hutch exec "$N" -- true
is "$RC" 0 "a new exec works again"

run hutch stop "$N"
is "$RC" 0 "stop over ssh"
like "$(vsh domstate "$D")" "shut off" "... the domain is shut off"
run hutch destroy "$N"
is "$RC" 0 "destroy over ssh"
unlike "$(vsh list --all --name)" "^$D\$" "... undefines it"

kill "$sshd_pid" 2>/dev/null
done_testing
