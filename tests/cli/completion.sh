#!/bin/sh
# completion/hutch.bash is what `hutch completion bash` prints: regenerate it with
#   build/hutch completion bash > completion/hutch.bash
set -eu
hutch=$1 file=$2
out=$("$hutch" completion bash)
if ! printf '%s\n' "$out" | diff -u "$file" -; then
	echo "completion/hutch.bash differs from '$hutch completion bash': regenerate it" >&2
	exit 1
fi
# It loads and completes: `hutch st<TAB>` offers start and stop.
bash -c '. "$1"; COMP_WORDS=(hutch st); COMP_CWORD=1; _hutch; [ "${COMPREPLY[*]}" = "start stop" ]' sh "$file"
