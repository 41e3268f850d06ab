#!/usr/bin/env bash
# The demo behind `make demo`: boot the built-in micro VM as a disposable and run a command in it.
#
#   scripts/demo.sh [PATH/TO/hutch]
#
# Unless HUTCH_HOME is set, everything goes to a temp dir that is removed afterwards, so the demo
# leaves no state behind. While the `run` verb is not there yet, it shows create, start, stop and
# destroy instead, and prints the guest's boot line.
set -euo pipefail

hutch=${1:-build/hutch}
case "$hutch" in /*) ;; *) hutch=$PWD/$hutch ;; esac
if [ ! -x "$hutch" ]; then
	echo "demo: $hutch is missing: run 'make build' first" >&2
	exit 1
fi

own_home=
vm=
cleanup()
{
	if [ -n "$vm" ]; then
		"$hutch" stop --force "$vm" >/dev/null 2>&1 || true
		"$hutch" destroy --force "$vm" >/dev/null 2>&1 || true
	fi
	[ -z "$own_home" ] || rm -rf "$own_home"
	[ -z "${errf:-}" ] || rm -f "$errf"
}
trap cleanup EXIT

if [ -z "${HUTCH_HOME:-}" ]; then
	own_home=$(mktemp -d "${TMPDIR:-/tmp}/hutch-demo.XXXXXX")
	export HUTCH_HOME=$own_home
fi
echo "demo: HUTCH_HOME=$HUTCH_HOME"
errf=$(mktemp "${TMPDIR:-/tmp}/hutch-demo-err.XXXXXX")

# hutch ARGS...: echo the command, then run it.
hutch()
{
	echo "\$ hutch $*"
	"$hutch" "$@"
}

set +e
hutch run --rm micro -- uname -a 2> >(tee "$errf" >&2)
rc=$?
set -e
wait # for tee
if [ $rc -eq 0 ] || ! grep -q 'not implemented yet' "$errf"; then
	exit $rc
fi

echo "demo: 'hutch run' is not implemented yet; showing the VM lifecycle instead"
vm=demo-$$
hutch create "$vm" --template micro
hutch start "$vm"
hutch list
echo "\$ hutch logs $vm   # the guest's boot line"
"$hutch" logs "$vm" | grep -E 'Linux version|hutch-agent: ready' || "$hutch" logs "$vm" | tail -3
hutch stop "$vm"
hutch destroy "$vm"
vm=
