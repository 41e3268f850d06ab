#!/usr/bin/env bash
# Flatpak apps in VMs (issue 12, reference 003), with no network, the way flatpak's own tests work:
# flatpak-test-repo.sh builds a busybox runtime and the app org.test.Hello into a local repository,
# and the test user installs them (`flatpak --user`, HOME inside this test's temp dir). A guest image
# with flatpak and bubblewrap (HUTCH_GUEST_ROOTFS, tests/fixtures/guest-rootfs.sh, made into an OCI
# image) then runs it with `hutch run NAME --flatpak org.test.Hello`: the app's output comes back
# from inside the VM; it runs as the guest user with the test user's uid, not root; the user
# installation is read-only in the guest; what the app writes lands in the per-VM data dir (and in
# the host's own ~/.var/app/APP-ID with --shared-data, not before); the disposable VM is gone after
# the app exits. Bad app IDs and apps not installed fail before any VM starts.
# once
# timeout: 2400
. "$(dirname "$0")/lib.sh"
exec </dev/null

if [ -z "${HUTCH_GUEST_ROOTFS:-}" ] || [ ! -r "$HUTCH_GUEST_ROOTFS" ]; then
	echo "ok 1 # SKIP no guest root filesystem with flatpak (run.sh makes it as root: tests/fixtures/guest-rootfs.sh)"
	echo "1..1"
	exit 0
fi
export HUTCH_CMD_TIMEOUT=1200
app=org.test.Hello
uid=$(id -u)
# flatpak's user installation and the app data dirs live in this test's HOME
export HOME=$T/h
unset FLATPAK_USER_DIR FLATPAK_SYSTEM_DIR XDG_DATA_HOME
mkdir -p "$HOME"

# ---- on the host: the repository, the installation, and flatpak run (the floor) ----
ok "flatpak-test-repo.sh: a busybox runtime and $app in a local repository" \
	"$_lib_dir/flatpak-test-repo.sh" "$T/repo"
ok "flatpak --user remote-add --no-gpg-verify" flatpak --user remote-add --no-gpg-verify test-repo "$T/repo"
# flatpak asks the system bus for parental controls; a private bus without that service lets it pass
# shellcheck disable=SC2016
run dbus-run-session -- sh -c 'DBUS_SYSTEM_BUS_ADDRESS=$DBUS_SESSION_BUS_ADDRESS flatpak --user install -y test-repo '"$app"
is "$RC" 0 "flatpak --user install $app (and its runtime)"
run flatpak run "$app" floor
contains "$OUT" "Hello world, from a sandbox" "flatpak run on the host"
host_data=$HOME/.var/app/$app/data
is "$(cat "$host_data/hello.txt" 2>/dev/null)" "floor" "the host's own data dir has the host run's file"

# ---- the guest image ----
# the OCI image of the guest root filesystem: run.sh's cached one (HUTCH_GUEST_OCI), else made here
if [ -n "${HUTCH_GUEST_OCI:-}" ] && [ -d "$HUTCH_GUEST_OCI/layout" ]; then
	ln -s "$HUTCH_GUEST_OCI" "$T/img"
fi
ok "an OCI image of the guest root filesystem (flatpak, bubblewrap)" \
	sh -c '[ -d "$1/layout" ] || python3 "$2" "$3" "$1" --no-kernel' sh "$T/img" "$_lib_dir/oci-image.py" "$HUTCH_GUEST_ROOTFS"
run hutch create fp --oci "oci:$T/img/layout:test" -d 4G
is "$RC" 0 "create fp --oci (Debian with flatpak)"

# ---- errors, before any VM starts ----
run hutch run fp --flatpak
is "$RC" 2 "--flatpak without an app ID: a usage error"
run hutch run fp --shared-data
is "$RC" 2 "--shared-data without --flatpak: a usage error (not a command to run)"
run hutch run fp --flatpak org.test.Missing
is "$RC" 1 "an app installed nowhere: exit 1"
contains "$ERR" "flatpak app 'org.test.Missing' is installed neither in" "the error names the app and both installations"
run hutch run fp --flatpak 'bad/id'
is "$RC" 1 "an invalid app ID: exit 1"
contains "$ERR" "not a flatpak app ID" "the error says why"
run hutch run -u root --flatpak "$app" fp
is "$RC" 2 "--flatpak with -u root: a usage error (the app never runs as root)"

is "$(vm_names | tr '\n' ' ')" "fp " "no instance was made by them"
ok "and no QEMU started" no_qemu

# ---- run 1: the per-VM data dir; the app waits, so the guest can be looked at meanwhile ----
vm_data=$HUTCH_HOME/data/flatpak/fp/$app
hutch run fp --flatpak "$app" -- wait "two words" >"$T/out1" 2>"$T/err1" &
runpid=$!
if wait_until 1100 test -s "$vm_data/data/hello.txt"; then
	pass "the app started in the VM and wrote into the per-VM data dir"
else
	fail "the app started in the VM and wrote into the per-VM data dir" "$(cat "$T/err1")"
fi
is "$(cat "$vm_data/data/hello.txt" 2>/dev/null)" "wait two words" "the app's arguments arrive unsplit"
is "$(cat "$host_data/hello.txt" 2>/dev/null)" "floor" "the host's own data dir is untouched"
inst=$(vm_names | grep '^fp-' | head -n 1)
ok "a disposable instance of fp runs the app ($inst)" test -n "$inst"
iname=${inst#fp-}
run hutch exec fp --instance "$iname" -- sh -c "touch '$HOME/.local/share/flatpak/x'"
ok "the user installation is read-only in the guest" test "$RC" -ne 0
contains "$ERR" "Read-only file system" "a write there gets EROFS"
run hutch exec fp --instance "$iname" -- sh -c 'touch /var/lib/flatpak/x'
contains "$ERR" "Read-only file system" "so does the system installation"
run hutch exec fp --instance "$iname" -- sh -c "ps -o user=,comm= -u $uid | sort -u"
like "$OUT" "hello.sh" "the app's processes run as uid $uid in the guest"
run hutch exec fp --instance "$iname" -- sh -c 'ps -o comm= -u 0'
unlike "$OUT" "hello.sh|bwrap" "none of them as root"
echo released >"$vm_data/data/go"
wait "$runpid"
rc1=$?
is "$rc1" 0 "run --flatpak exits with the app's status once it is released"
out1=$(cat "$T/out1")
contains "$out1" "Hello world, from a sandbox" "the app's output comes from inside the VM"
contains "$out1" "uid: $uid" "the app ran as the test user's uid"
contains "$out1" "go: released" "it saw the host's write to its data dir (read-write share)"
is "$(vm_names | tr '\n' ' ')" "fp " "the disposable instance is gone after the app exited"
ok "no QEMU is left" no_qemu

# ---- run 2: --shared-data, the host's own data dir ----
run hutch run fp --flatpak "$app" --shared-data shared
is "$RC" 0 "run fp --flatpak APP --shared-data ARGS (no --: the issue's form)"
contains "$OUT" "args: shared" "the app's output"
is "$(cat "$host_data/hello.txt" 2>/dev/null)" "shared" "the app wrote into the host's ~/.var/app/$app"
is "$(cat "$vm_data/data/hello.txt" 2>/dev/null)" "wait two words" "and not into the per-VM one"
is "$(vm_names | tr '\n' ' ')" "fp " "that instance is gone too"

done_testing
