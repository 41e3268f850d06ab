# shellcheck shell=bash
# Shared by the cloud-image tests (95-cloud.sh, 59-warm-image.sh, 67-libvirt-image.sh,
# 68-netvm-image.sh). Source it after lib.sh, with IMG (the image's file name) and SECTIONS (the
# names reported as SKIP when there is no image) set.
#
#   cloud_fixture          sets image_dir, or reports every section as SKIP (HUTCH_SKIP_CLOUD=1, no
#                          fixture) or fails with the fixture build's log, and exits
#   cloud_serve REQLOG     serves image_dir over loopback HTTP (tests/fixtures/serve.sh), sets
#                          base=http://127.0.0.1:PORT and stops the server on exit
#   section TEXT           a diag line with the seconds so far

_cloud_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

skip_all()
{
	local s
	for s in $SECTIONS; do
		_tap_n=$((_tap_n + 1))
		echo "ok $_tap_n - $s # SKIP $1"
	done
	done_testing
	exit $?
}

section()
{
	diag "---- $* ---- (${SECONDS}s)"
}

cloud_fixture()
{
	image_dir=${HUTCH_DEBIAN_IMAGE_DIR:-}
	[ "${HUTCH_SKIP_CLOUD:-}" = 1 ] && skip_all "HUTCH_SKIP_CLOUD=1"
	if [ -z "$image_dir" ] && [ -n "${HUTCH_DEBIAN_IMAGE_LOG:-}" ]; then
		fail "the Debian 12 image fixture builds (tests/fixtures/debian-image.sh)" \
			"the build failed; the last lines of its log ($HUTCH_DEBIAN_IMAGE_LOG):" \
			"$(tail -n 40 "$HUTCH_DEBIAN_IMAGE_LOG" 2>&1)"
		done_testing
		exit $?
	fi
	if [ -z "$image_dir" ] && [ "$(id -u)" -eq 0 ] && [ -x "$_cloud_here/../fixtures/debian-image.sh" ]; then
		# Run on its own from a checkout, as root: build or reuse the fixture here.
		image_dir=$("$_cloud_here/../fixtures/debian-image.sh" 2>"$T/fixture.log" </dev/null | tail -n 1) || {
			fail "the Debian 12 image fixture builds (tests/fixtures/debian-image.sh)" \
				"the last lines of its log:" "$(tail -n 40 "$T/fixture.log")"
			done_testing
			exit $?
		}
	fi
	[ -n "$image_dir" ] || skip_all "no fixture"
	if [ ! -r "$image_dir/$IMG" ] || [ ! -r "$image_dir/SHA256SUMS" ]; then
		fail "the fixture dir has a readable image and SHA256SUMS" "HUTCH_DEBIAN_IMAGE_DIR=$image_dir" \
			"$(ls -la "$image_dir" 2>&1)"
		done_testing
		exit $?
	fi
}

_cloud_server_pid=
_cloud_cleanup()
{
	local rc=$?
	[ -z "$_cloud_server_pid" ] || kill "$_cloud_server_pid" 2>/dev/null
	(exit $rc)
	_cleanup
}

cloud_serve()
{
	: >"$1"
	trap _cloud_cleanup EXIT
	bash "$_cloud_here/../fixtures/serve.sh" "$image_dir" "$T/port" "$1" >"$T/serve.log" 2>&1 &
	_cloud_server_pid=$!
	if ! wait_until 30 test -s "$T/port"; then
		fail "the fixture HTTP server starts" "$(cat "$T/serve.log")"
		done_testing
		exit $?
	fi
	base=http://127.0.0.1:$(cat "$T/port")
}
