# shellcheck shell=bash
# TAP helpers for hutch integration tests. Source this from tests/integration/NN-name.sh.
#
# Each test gets its own HUTCH_HOME under a fresh temp dir, and an EXIT trap that stops and
# destroys every VM it made and kills any monitor or QEMU left behind for that HUTCH_HOME, even
# when the test fails or is killed by the runner's timeout.
#
# Environment (set by run.sh; defaults let a test run on its own from a checkout):
#   HUTCH           the hutch binary (hutch-agent must sit beside it)
#   HUTCH_TEST_TMP  where to make this test's temp dir
#   HUTCH_CMD_TIMEOUT  bound on any single hutch call, seconds (default 180)

set -u
set -o pipefail

_lib_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${HUTCH:=$_lib_dir/../../build/hutch}"
HUTCH=$(cd "$(dirname "$HUTCH")" && pwd)/$(basename "$HUTCH")
export HUTCH
: "${HUTCH_CMD_TIMEOUT:=180}"

T=$(mktemp -d "${HUTCH_TEST_TMP:-${TMPDIR:-/tmp}}/hutch-it.XXXXXX")
chmod 755 "$T"
export HUTCH_HOME=$T/home
mkdir -p "$HUTCH_HOME"
# Keep sun_path short and independent of the caller's session.
unset XDG_CONFIG_HOME XDG_DATA_HOME XDG_CACHE_HOME XDG_RUNTIME_DIR

_tap_n=0
_tap_failed=0

# hutch ARGS...: the binary under test, bounded so a hang becomes a failure, not a stuck suite.
hutch()
{
	timeout -k 5 "$HUTCH_CMD_TIMEOUT" "$HUTCH" "$@"
}

# run CMD...: run a command, keep its stdout in $OUT, stderr in $ERR and status in $RC.
run()
{
	"$@" >"$T/.out" 2>"$T/.err"
	RC=$?
	OUT=$(cat "$T/.out")
	ERR=$(cat "$T/.err")
	_last_cmd="$*"
	return 0
}

diag()
{
	printf '%s\n' "$@" | sed 's/^/# /'
}

_diag_last()
{
	[ -n "${_last_cmd:-}" ] || return 0
	diag "last command: $_last_cmd" "exit status: ${RC:-?}"
	[ -z "${OUT:-}" ] || diag "stdout:" "$(printf '%s\n' "$OUT" | head -40)"
	[ -z "${ERR:-}" ] || diag "stderr:" "$(printf '%s\n' "$ERR" | head -40)"
}

pass()
{
	_tap_n=$((_tap_n + 1))
	echo "ok $_tap_n - $1"
}

fail()
{
	_tap_n=$((_tap_n + 1))
	_tap_failed=$((_tap_failed + 1))
	echo "not ok $_tap_n - $1"
	shift
	[ $# -eq 0 ] || diag "$@"
	_diag_last
}

# ok DESC CMD...: pass when CMD succeeds.
ok()
{
	local desc=$1
	shift
	if "$@"; then pass "$desc"; else fail "$desc" "failed: $*"; fi
}

# is ACTUAL EXPECTED DESC
is()
{
	if [ "$1" = "$2" ]; then pass "$3"; else fail "$3" "got:      '$1'" "expected: '$2'"; fi
}

# like TEXT ERE DESC: TEXT has a line matching the extended regex.
like()
{
	# a here-string, not a pipe: under pipefail, grep -q leaving at the first match can kill the
	# writer with SIGPIPE and fail a pipeline that matched
	if grep -Eq -- "$2" <<<"$1"; then
		pass "$3"
	else
		fail "$3" "no line matches /$2/ in:" "$(printf '%s\n' "$1" | head -40)"
	fi
}

# unlike TEXT ERE DESC
unlike()
{
	if grep -Eq -- "$2" <<<"$1"; then
		fail "$3" "a line matches /$2/ in:" "$(printf '%s\n' "$1" | head -40)"
	else
		pass "$3"
	fi
}

# contains TEXT FIXED DESC: TEXT contains the fixed string.
contains()
{
	if printf '%s\n' "$1" | grep -Fq -- "$2"; then
		pass "$3"
	else
		fail "$3" "'$2' not found in:" "$(printf '%s\n' "$1" | head -60)"
	fi
}

# wait_until SECONDS CMD...: poll CMD every 0.2 s until it succeeds; a bounded wait, not a timing assertion.
wait_until()
{
	local deadline=$((SECONDS + $1))
	shift
	while ! "$@"; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.2
	done
	return 0
}

# pids_of_home PATTERN: pids of our processes whose cmdline matches PATTERN (pgrep -f) and that
# belong to this test's HUTCH_HOME (by their environment, or QEMU's argv naming a path under it).
pids_of_home()
{
	local p
	for p in $(pgrep -u "$(id -u)" -f -- "$1"); do
		[ "$p" != $$ ] || continue
		if grep -qxF "HUTCH_HOME=$HUTCH_HOME" < <(tr '\0' '\n' 2>/dev/null <"/proc/$p/environ") ||
			grep -qF "$HUTCH_HOME/" < <(tr '\0' '\n' 2>/dev/null <"/proc/$p/cmdline"); then
			echo "$p"
		fi
	done
}

# monitor_pid NAME: the pid of NAME's monitor (`hutch __monitor NAME ...`) for this HUTCH_HOME.
monitor_pid()
{
	pids_of_home "__monitor $1( |\$)"
}

qemu_pids()
{
	pids_of_home "qemu-system"
}

qemu_count()
{
	qemu_pids | wc -l
}

no_qemu()
{
	[ "$(qemu_count)" -eq 0 ]
}

# vm_names: every VM in this HUTCH_HOME, by its directory (works for broken specs too).
vm_names()
{
	local d
	for d in "$HUTCH_HOME"/data/vms/*/; do
		[ -d "$d" ] && basename "$d"
	done
}

# json_get JSON PYEXPR: evaluate a python expression over the parsed JSON `j`.
json_get()
{
	printf '%s' "$1" | python3 -c 'import json,sys; j=json.load(sys.stdin); print(eval(sys.argv[1]))' "$2"
}

# use_hostile_agent: the VMs boot the hostile-agent test build beside hutch (HUTCH_AGENT; its mode
# comes from hutch.hostile=MODE on the kernel command line). Without it the test fails here.
use_hostile_agent()
{
	local hostile
	hostile=$(dirname "$HUTCH")/hostile-agent
	if [ ! -x "$hostile" ]; then
		fail "the hostile-agent test build is beside hutch" "missing: $hostile (ninja -C build)"
		done_testing
		exit 1
	fi
	export HUTCH_AGENT=$hostile
}

_cleanup()
{
	local rc=$? name p
	trap - EXIT INT TERM
	for name in $(vm_names 2>/dev/null); do
		HUTCH_CMD_TIMEOUT=30 hutch stop --force "$name" >/dev/null 2>&1
		HUTCH_CMD_TIMEOUT=30 hutch destroy --force "$name" >/dev/null 2>&1
	done
	for p in $(pids_of_home "__monitor|qemu-system|$HUTCH"); do
		kill -9 "$p" 2>/dev/null
	done
	rm -rf "$T"
	exit $rc
}
trap _cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# done_testing: print the plan; exit non-zero if any assertion failed.
done_testing()
{
	echo "1..$_tap_n"
	[ $_tap_failed -eq 0 ]
}
