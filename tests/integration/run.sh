#!/usr/bin/env bash
# Run hutch's integration tests: shell TAP against the built binary and real QEMU.
#
#   tests/integration/run.sh [TEST...]     TEST: a file name or its number prefix (10, 10-lifecycle.sh)
#
# hutch is rootless, so the tests run as an unprivileged user. Started as root, this creates the
# user `hutchtest` (HUTCH_TEST_USER) if needed and re-runs itself as that user. Either way it first
# copies hutch, hutch-agent (hutch finds it beside itself), the test helpers and these scripts into
# a fresh world-readable temp dir, because the checkout may sit under a root-only path and the build
# may change while the tests run.
#
# Prints each test's TAP lines (indented), one summary line per test file, and as its last line
# exactly `N passed, N failed`, counting individual assertions. Exits non-zero if any failed.
#
# Environment: BUILDDIR (default: build), HUTCH_TEST_TIMEOUT (per test file, default 600 s, or the
# file's own "# timeout: SECONDS" header line when that is longer),
# HUTCH_TEST_USER (default hutchtest), HUTCH_KEEP=1 keeps the staging dir, HUTCH_SKIP_ONCE=1 skips the
# files whose header has a line "# once" when no TEST is named (CI's sanitizer pass).
#
# The cloud-image tests (95-cloud.sh, and any that reads HUTCH_DEBIAN_IMAGE_DIR) need a real Debian
# 12 image. Started as root with such a test selected (or no selection), this builds or reuses it
# first with tests/fixtures/debian-image.sh (cached: a hit takes under a second, a cold build 5-15
# min) and passes its directory on as HUTCH_DEBIAN_IMAGE_DIR; if the build fails,
# HUTCH_DEBIAN_IMAGE_LOG names its log instead and the test fails with it. HUTCH_SKIP_CLOUD=1 skips the build (the test then reports SKIP). Not as root,
# a HUTCH_DEBIAN_IMAGE_DIR already in the environment is passed on.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

summary()
{
	echo "$1 passed, $2 failed"
}

# ---- phase 1: stage the binaries and drop privileges ----
if [ -z "${HUTCH_IT_STAGED:-}" ]; then
	root=$(cd "$here/../.." && pwd)
	builddir=${BUILDDIR:-$root/build}
	case "$builddir" in /*) ;; *) builddir=$root/$builddir ;; esac
	for f in hutch hutch-agent; do
		if [ ! -x "$builddir/$f" ]; then
			echo "run.sh: $builddir/$f is missing: build first (make build)" >&2
			summary 0 1
			exit 1
		fi
	done
	stage=$(mktemp -d "${TMPDIR:-/tmp}/hutch-stage.XXXXXX")
	if [ "${HUTCH_KEEP:-}" != 1 ]; then
		trap 'rm -rf "$stage"' EXIT
	fi
	mkdir -p "$stage/bin" "$stage/tests"
	cp "$builddir/hutch" "$builddir/hutch-agent" "$stage/bin/"
	[ -x "$builddir/hostile-agent" ] && cp "$builddir/hostile-agent" "$stage/bin/"
	for h in "$root"/tests/helpers/*.c; do
		[ -e "$h" ] || continue
		h=$(basename "$h" .c)
		[ -x "$builddir/$h" ] && cp "$builddir/$h" "$stage/bin/"
	done
	cp -r "$here/." "$stage/tests/"
	# 95-cloud.sh serves the image with these (as $stage/tests/../fixtures/serve.sh).
	mkdir -p "$stage/fixtures" "$stage/helpers"
	cp "$root/tests/fixtures/serve.sh" "$stage/fixtures/" 2>/dev/null
	cp "$root/tests/helpers/http-fixture.py" "$stage/helpers/" 2>/dev/null
	chmod -R a+rX "$stage"
	chmod 755 "$stage"

	passenv=(HUTCH_IT_STAGED="$stage" PATH="$stage/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
		 HUTCH_TEST_TIMEOUT="${HUTCH_TEST_TIMEOUT:-}" TMPDIR=/tmp LANG=C.UTF-8 LC_ALL=C.UTF-8)
	# The Debian image for 95-cloud.sh: built (or reused) here, as root, before dropping privileges.
	wants_cloud=
	if [ $# -eq 0 ]; then
		wants_cloud=1
	else
		for a in "$@"; do
			a=$(basename "$a")
			for t in "$here/$a" "$here/$a"-*.sh "$here/$a".sh; do
				if [ -f "$t" ]; then
					# the tests that boot the image name its variable (95-cloud.sh, 68-...)
					! grep -qE "HUTCH_DEBIAN_IMAGE_DIR|HUTCH_OCI_ROOTFS|HUTCH_GUEST_ROOTFS|^cloud_fixture" "$t" || wants_cloud=1
					break
				fi
			done
		done
	fi
	if [ "$(id -u)" -eq 0 ] && [ -n "$wants_cloud" ] && [ "${HUTCH_SKIP_CLOUD:-}" != 1 ]; then
		fixture_log=$stage/debian-image.log
		t_fixture=$SECONDS
		# shellcheck disable=SC2034 # both are passed on through passenv below
		if image_dir=$("$root/tests/fixtures/debian-image.sh" 2>"$fixture_log" </dev/null | tail -n 1) &&
			[ -n "$image_dir" ] && [ -f "$image_dir/.done" ]; then
			HUTCH_DEBIAN_IMAGE_DIR=$image_dir
			echo "# fixture: Debian 12 image in $image_dir ($((SECONDS - t_fixture)) s)"
		else
			unset HUTCH_DEBIAN_IMAGE_DIR
			HUTCH_DEBIAN_IMAGE_LOG=$fixture_log
			echo "# fixture: building the Debian 12 image FAILED ($((SECONDS - t_fixture)) s); log: $fixture_log"
		fi
		chmod a+r "$fixture_log"
	fi
	# derive VAR INPUT SCRIPT WHAT: the fixture tests/fixtures/SCRIPT makes from INPUT (cached by its
	# inputs; stdout's last line is its path) goes to the tests as VAR, or VAR is unset and its log named.
	derive() {
		local var=$1 input=$2 script=$root/tests/fixtures/$3 what=$4 log=$stage/${3%.sh}.log out
		[ -n "$input" ] && [ -x "$script" ] || return 0
		if out=$("$script" "$input" 2>>"$log" </dev/null | tail -n 1) && [ -n "$out" ] && [ -e "$out" ]; then
			printf -v "$var" '%s' "$out"
			echo "# fixture: $what in $out"
		else
			unset "$var"
			echo "# fixture: $what FAILED; log: $log"
		fi
	}
	if [ "$(id -u)" -eq 0 ]; then
		# The container-image test on a real distribution (32-oci-debian.sh): the Debian image's
		# root filesystem as a tarball (oci-rootfs.sh, a loop mount as root).
		derive HUTCH_OCI_ROOTFS "${HUTCH_DEBIAN_IMAGE_DIR:-}" oci-rootfs.sh "the Debian image's root filesystem"
		# Guests with programs in them (podman, flatpak, bubblewrap, dbus, notify-send): that root
		# filesystem plus Debian packages (guest-rootfs.sh, apt-get in a chroot) ...
		derive HUTCH_GUEST_ROOTFS "${HUTCH_OCI_ROOTFS:-}" guest-rootfs.sh "the guest root filesystem with programs"
		# ... and that as an OCI image (layout and docker-archive), made once for all its tests.
		derive HUTCH_GUEST_OCI "${HUTCH_GUEST_ROOTFS:-}" guest-oci.sh "the guest root filesystem as an OCI image"
		# ... and the Debian root filesystem as OCI images, plain and with a kernel (32-oci-debian.sh).
		derive HUTCH_DEBIAN_OCI "${HUTCH_OCI_ROOTFS:-}" debian-oci.sh "the Debian root filesystem as OCI images"
	fi
	# Tests that need the invoking root user (root/*.sh: a /dev/kvm only root can open, say) run
	# here, before privileges are dropped, as root with their own HUTCH_HOME; their counts are
	# carried into the final summary.
	root_pass=0
	root_fail=0
	wants_root=
	if [ $# -eq 0 ]; then
		wants_root=1
	else
		for a in "$@"; do
			case $a in root | root/*) wants_root=1 ;; esac
		done
	fi
	if [ -n "$wants_root" ]; then
		for t in "$here"/root/*.sh; do
			[ -f "$t" ] || continue
			name=root/$(basename "$t")
			if [ "$(id -u)" -ne 0 ]; then
				echo "# $name: skipped (needs root)"
				continue
			fi
			rdir=$(mktemp -d /tmp/hutch-itr.XXXXXX)
			chmod 755 "$rdir"
			t0=$SECONDS
			echo "# $name"
			HUTCH=$stage/bin/hutch HUTCH_HELPERS=$stage/bin HUTCH_TEST_TMP=$rdir PATH="$stage/bin:$PATH" \
				timeout -k 20 "${HUTCH_TEST_TIMEOUT:-600}" bash "$t" 2>&1 | tee "$rdir.tap" | sed -u 's/^/    /'
			rc=${PIPESTATUS[0]}
			p=$(grep -c '^ok ' "$rdir.tap")
			f=$(grep -c '^not ok ' "$rdir.tap")
			if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
				echo "    not ok - $name: exit status $rc"
				f=$((f + 1))
			fi
			root_pass=$((root_pass + p))
			root_fail=$((root_fail + f))
			echo "# $name: $([ "$f" -eq 0 ] && echo ok || echo FAILED), $p passed, $f failed, $((SECONDS - t0)) s"
			rm -rf "$rdir" "$rdir.tap"
		done
	fi
	passenv+=(HUTCH_ROOT_PASS="$root_pass" HUTCH_ROOT_FAIL="$root_fail")
	for v in ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS HUTCH_CMD_TIMEOUT TERM \
		HUTCH_SKIP_CLOUD HUTCH_SKIP_ONCE HUTCH_DEBIAN_IMAGE_DIR HUTCH_DEBIAN_IMAGE_LOG HUTCH_OCI_ROOTFS \
		HUTCH_GUEST_ROOTFS HUTCH_GUEST_OCI HUTCH_DEBIAN_OCI; do
		[ -n "${!v:-}" ] && passenv+=("$v=${!v}")
	done
	if [ "$(id -u)" -eq 0 ]; then
		user=${HUTCH_TEST_USER:-hutchtest}
		if ! id "$user" >/dev/null 2>&1; then
			useradd -m -s /bin/bash "$user" || {
				echo "run.sh: cannot create user '$user'" >&2
				summary 0 1
				exit 1
			}
		fi
		home=$(getent passwd "$user" | cut -d: -f6)
		runuser -u "$user" -- env -i HOME="$home" USER="$user" LOGNAME="$user" "${passenv[@]}" \
			bash "$stage/tests/run.sh" "$@"
	else
		env "${passenv[@]}" bash "$stage/tests/run.sh" "$@"
	fi
	exit $?
fi

# ---- phase 2: as the unprivileged user, run each test file ----
stage=$HUTCH_IT_STAGED
export HUTCH=$stage/bin/hutch
export HUTCH_HELPERS=$stage/bin
timeout_s=${HUTCH_TEST_TIMEOUT:-600}
[ -n "$timeout_s" ] || timeout_s=600

work=$(mktemp -d /tmp/hutch-itw.XXXXXX)
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT

tests=()
if [ $# -eq 0 ]; then
	for t in "$stage"/tests/[0-9][0-9]-*.sh; do
		[ -e "$t" ] || continue
		# A file whose header says "# once" boots many VMs or runs long: the second pass of CI
		# (the sanitizer build, HUTCH_SKIP_ONCE=1) leaves it to the plain pass.
		if [ "${HUTCH_SKIP_ONCE:-}" = 1 ] && head -n 30 "$t" | grep -qx '# once'; then
			echo "# $(basename "$t"): skipped in this pass (# once: it ran in the plain pass)"
			continue
		fi
		tests+=("$t")
	done
else
	for a in "$@"; do
		case $a in root | root/*) continue ;; esac
		a=$(basename "$a")
		found=
		for t in "$stage"/tests/"$a" "$stage"/tests/"$a"-*.sh "$stage"/tests/"$a".sh; do
			if [ -f "$t" ]; then
				tests+=("$t")
				found=1
				break
			fi
		done
		[ -n "$found" ] || {
			echo "run.sh: no test '$a'" >&2
			summary 0 1
			exit 1
		}
	done
fi

# sweep DIR: kill our processes whose HUTCH_HOME is under DIR. Prints how many it found. libvirt's
# per-user session daemons are not a test's: one that a test's hutch started (connecting autospawns
# it, after 63 or 65 killed the last one) carries that test's environment, and serves every later test.
sweep()
{
	local n=0 p
	for p in $(pgrep -u "$(id -u)"); do
		[ "$p" != $$ ] || continue
		case "$(cat "/proc/$p/comm" 2>/dev/null)" in libvirtd | virtqemud | virtlogd | virtlockd | virt*d) continue ;; esac
		if grep -q "^HUTCH_HOME=$1/" < <(tr '\0' '\n' 2>/dev/null <"/proc/$p/environ"); then
			kill -9 "$p" 2>/dev/null && n=$((n + 1))
		fi
	done
	echo $n
}

total_pass=${HUTCH_ROOT_PASS:-0}
total_fail=${HUTCH_ROOT_FAIL:-0}
t_suite=$SECONDS
echo "integration: ${#tests[@]} test files as $(id -un), $("$HUTCH" --version 2>&1 | head -1)"
for t in "${tests[@]}"; do
	name=$(basename "$t")
	dir=$work/${name%.sh}
	mkdir -p "$dir"
	log=$dir.tap
	t0=$SECONDS
	echo "# $name"
	# A file may ask for more time than the default with a "# timeout: SECONDS" line in its header
	# (the cloud-image tests boot real Debian VMs under TCG); HUTCH_TEST_TIMEOUT overrides all.
	t_timeout=$timeout_s
	if [ -z "${HUTCH_TEST_TIMEOUT:-}" ]; then
		want=$(head -n 30 "$t" | sed -n 's/^# timeout: \([0-9][0-9]*\)$/\1/p' | head -n 1)
		[ -n "$want" ] && [ "$want" -gt "$t_timeout" ] && t_timeout=$want
	fi
	HUTCH_TEST_TMP=$dir timeout -k 20 "$t_timeout" bash "$t" 2>&1 | tee "$log" | sed -u 's/^/    /'
	rc=${PIPESTATUS[0]}
	p=$(grep -c '^ok ' "$log")
	f=$(grep -c '^not ok ' "$log")
	plan=$(sed -n 's/^1\.\.\([0-9][0-9]*\)$/\1/p' "$log" | tail -1)
	why=
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		why="timed out after ${t_timeout} s"
	elif [ -z "$plan" ]; then
		why="ended without a plan (exit status $rc)"
	elif [ "$plan" -ne $((p + f)) ]; then
		why="planned $plan assertions, ran $((p + f))"
	elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		why="exit status $rc"
	fi
	if [ -n "$why" ]; then
		echo "    not ok - $name: $why"
		f=$((f + 1))
	fi
	left=$(sweep "$dir")
	if [ "$left" -ne 0 ]; then
		echo "    not ok - $name: left $left hutch/QEMU processes behind (killed)"
		f=$((f + 1))
	fi
	total_pass=$((total_pass + p))
	total_fail=$((total_fail + f))
	if [ "$f" -eq 0 ]; then
		echo "# $name: ok, $p assertions, $((SECONDS - t0)) s"
	else
		echo "# $name: FAILED, $f of $((p + f)) assertions failed, $((SECONDS - t0)) s"
	fi
done
echo "# integration: $((SECONDS - t_suite)) s"
summary "$total_pass" "$total_fail"
[ "$total_fail" -eq 0 ]
