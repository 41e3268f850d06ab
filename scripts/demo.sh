#!/usr/bin/env bash
# The demo behind `make demo`: boot the built-in micro VM as a disposable and run a command in it.
#
#   scripts/demo.sh [PATH/TO/hutch]
#
# Unless HUTCH_HOME is set, everything goes to a temp dir that is removed afterwards, so the demo
# leaves no state behind.
set -euo pipefail

hutch=${1:-build/hutch}
case "$hutch" in /*) ;; *) hutch=$PWD/$hutch ;; esac
if [ ! -x "$hutch" ]; then
	echo "demo: $hutch is missing: run 'make build' first" >&2
	exit 1
fi

own_home=
cleanup()
{
	[ -z "$own_home" ] || rm -rf "$own_home"
}
trap cleanup EXIT
if [ -z "${HUTCH_HOME:-}" ]; then
	own_home=$(mktemp -d "${TMPDIR:-/tmp}/hutch-demo.XXXXXX")
	export HUTCH_HOME=$own_home
fi

echo "+ hutch run --rm micro -- uname -a"
start=$(date +%s%N)
"$hutch" run --rm micro -- uname -a
end=$(date +%s%N)
echo "demo: a disposable VM booted, ran the command and was removed in $(((end - start) / 1000000)) ms"
# How it was accelerated, and why: KVM only where a probe booted a guest with it on this host.
"$hutch" doctor | grep -E '^(ok|warn|FAIL) +kvm' -A1 | sed 's/^ *fix:/  fix:/' || true
