#!/usr/bin/env bash
# tests/integration/flatpak-test-repo.sh REPO
#
# A flatpak repository with no network, the way flatpak's own tests make one (its
# tests/make-test-runtime.sh and make-test-app.sh): a tiny runtime org.test.Platform built from the
# host's static busybox, and an app org.test.Hello on it, exported into the ostree repository REPO
# with flatpak build-finish and build-export. Runs as any user (no root, no network);
# it takes a few seconds, so the tests build it fresh.
#
# The app's command hello.sh prints "Hello world, from a sandbox", its arguments, its uid and what
# it sees of its installation, and writes its arguments into $XDG_DATA_HOME/hello.txt (flatpak
# points that at ~/.var/app/org.test.Hello/data). Given the argument `wait`, it then waits (up to
# 10 minutes) until the file $XDG_DATA_HOME/go exists, so a test can look at the VM while the app
# runs.
#
# Install it with:
#   flatpak --user remote-add --no-gpg-verify test-repo REPO
#   flatpak --user install -y test-repo org.test.Hello
set -euo pipefail
repo=${1:?usage: flatpak-test-repo.sh REPO}
busybox=${BUSYBOX:-/bin/busybox}
branch=master
arch=$(flatpak --default-arch)
work=$(mktemp -d "${TMPDIR:-/tmp}/flatpak-test-repo.XXXXXX")
trap 'rm -rf "$work"' EXIT

if ! "$busybox" --list >/dev/null 2>&1 || ldd "$busybox" >/dev/null 2>&1; then
	echo "flatpak-test-repo.sh: $busybox is not a static busybox (Debian: busybox-static)" >&2
	exit 1
fi

# The runtime: its usr/ is /usr in the sandbox, so busybox and its applets go into usr/bin.
rt=$work/runtime
# (build-init wants the runtime installed already, so its metadata is written by hand)
mkdir -p "$rt/usr/bin" "$rt/usr/etc" "$rt/files" # (an empty files/ marks it initialized)
cat >"$rt/metadata" <<EOF
[Runtime]
name=org.test.Platform
runtime=org.test.Platform/$arch/$branch
sdk=org.test.Platform/$arch/$branch
EOF
cp "$busybox" "$rt/usr/bin/busybox"
for applet in sh echo cat mkdir ls id sleep test touch printf head stat; do
	ln -s busybox "$rt/usr/bin/$applet"
done
flatpak build-export --no-update-summary --runtime --disable-sandbox "$repo" "$rt" "$branch" >/dev/null

# The app: one shell script on that runtime.
app=$work/app
mkdir -p "$app/files/bin"
cat >"$app/metadata" <<EOF
[Application]
name=org.test.Hello
runtime=org.test.Platform/$arch/$branch
sdk=org.test.Platform/$arch/$branch
EOF
cat >"$app/files/bin/hello.sh" <<'EOF'
#!/bin/sh
echo "Hello world, from a sandbox"
echo "args: $*"
echo "uid: $(id -u)"
echo "app: $(cat /app/bin/hello.sh | head -n 1)"
mkdir -p "$XDG_DATA_HOME"
echo "$*" >"$XDG_DATA_HOME/hello.txt"
if [ "${1:-}" = wait ]; then
	n=0
	while [ ! -e "$XDG_DATA_HOME/go" ] && [ $n -lt 1200 ]; do
		sleep 0.5
		n=$((n + 1))
	done
	echo "go: $(cat "$XDG_DATA_HOME/go" 2>/dev/null)"
fi
EOF
chmod 755 "$app/files/bin/hello.sh"
flatpak build-finish --command=hello.sh "$app" >/dev/null
flatpak build-export --no-update-summary --disable-sandbox "$repo" "$app" "$branch" >/dev/null
flatpak build-update-repo "$repo" >/dev/null
