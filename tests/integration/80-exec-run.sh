#!/usr/bin/env bash
# Programs in the guest through the agent: exec in a running VM (output, exit status, stdin), and
# run --rm on the micro template, which leaves nothing behind.
. "$(dirname "$0")/lib.sh"

run hutch create box --template micro
run hutch start box
is "$RC" 0 "start box"

run hutch exec box -- uname -n
is "$RC" 0 "exec uname exits 0"
is "$OUT" "box" "exec sees the guest's hostname"

run hutch exec box -- sh -c 'echo out; echo err >&2; exit 7'
is "$RC" 7 "exec passes the program's exit status through"
is "$OUT" "out" "exec streams stdout"
is "$ERR" "err" "exec streams stderr"

run hutch exec box -- /nonexistent/program
ok "exec of a missing program fails" test "$RC" -ne 0

printf 'line1\nline2\n' >"$T/in"
run hutch exec -i box -- wc -l <"$T/in"
is "$RC" 0 "exec -i exits 0"
is "$(echo "$OUT" | tr -d ' ')" 2 "exec -i feeds stdin to the program"

head -c 300000 /dev/urandom >"$T/blob"
run hutch exec -i box -- sha256sum <"$T/blob"
is "${OUT%% *}" "$(sha256sum <"$T/blob" | cut -d' ' -f1)" "exec -i carries 300 KB of stdin intact"

run hutch exec ghost -- true
is "$RC" 1 "exec in an undefined VM exits 1"
run hutch stop box
is "$RC" 0 "stop box"
run hutch exec box -- true
is "$RC" 1 "exec in a stopped VM exits 1"
like "$ERR" 'not running' "exec in a stopped VM says not running"

run hutch run --rm micro -- uname -s
is "$RC" 0 "run --rm micro exits 0"
is "$OUT" "Linux" "run --rm micro prints the program's output"
run hutch run --rm micro -- sh -c 'exit 5'
is "$RC" 5 "run --rm passes the exit status through"
ok "run --rm leaves no QEMU" wait_until 30 no_qemu
run hutch list -a
is "$(echo "$OUT" | grep -vc '^NAME')" 1 "run --rm leaves no VM behind (only box is listed)"

done_testing
