#!/usr/bin/env bash
# hutch exec and hutch cp against one booted micro VM: exit codes and signals, stdout/stderr
# separation, stdin, a 50 MiB binary round-trip, concurrent sessions, -e/-w/-u/-t, exec on a
# stopped VM, the fork-and-exit launcher, Ctrl-C forwarding, and cp both ways.
. "$(dirname "$0")/lib.sh"
exec </dev/null

run hutch create d --template micro
is "$RC" 0 "create d --template micro"
run hutch start d
is "$RC" 0 "start d"

# ---- exit status ----
run hutch exec d -- true
is "$RC" 0 "exec true exits 0"
run hutch exec d -- sh -c 'exit 7'
is "$RC" 7 "exec 'exit 7' exits 7"
run hutch exec d -- sh -c 'kill -9 $$'
is "$RC" 137 "a program killed by SIGKILL gives 128+9"
run hutch exec d -- sh -c 'kill -TERM $$'
is "$RC" 143 "a program killed by SIGTERM gives 128+15"
run hutch exec d -- /nonexistent/program
ok "a missing program is an error (exit $RC)" test "$RC" -ne 0

# ---- stdout and stderr stay apart ----
run hutch exec d -- sh -c 'echo to-out; echo to-err >&2; echo more-out'
is "$RC" 0 "stdout/stderr program exits 0"
is "$OUT" "$(printf 'to-out\nmore-out')" "stdout has only the stdout lines"
is "$ERR" "to-err" "stderr has only the stderr line"

# ---- stdin ----
printf 'hello\nworld\n' >"$T/in.txt"
run hutch exec d -- tr a-z A-Z <"$T/in.txt"
is "$OUT" "$(printf 'HELLO\nWORLD')" "stdin is piped to the program"
run hutch exec d -- sh -c 'cat >/dev/null; echo after-eof' <"$T/in.txt"
is "$OUT" "after-eof" "the program sees EOF on stdin"
run hutch exec d -- wc -c </dev/null
is "$(printf '%s' "$OUT" | tr -d ' ')" 0 "empty stdin reads as EOF"

# ---- 50 MiB binary round-trip ----
head -c 50M /dev/urandom >"$T/blob"
want=$(sha256sum <"$T/blob" | cut -d' ' -f1)
got=$(hutch exec d -- cat <"$T/blob" | sha256sum | cut -d' ' -f1)
st=${PIPESTATUS[0]}
is "$st" 0 "exec cat of 50 MiB exits 0"
is "$got" "$want" "50 MiB through exec cat keeps its sha256"
run hutch exec d -- sha256sum <"$T/blob"
is "${OUT%% *}" "$want" "the guest's sha256sum of 50 MiB of stdin matches"
rm -f "$T/blob"

# ---- 4 concurrent sessions in one VM ----
# Each session waits (bounded) until all four are inside the guest, so they really overlap.
for i in 1 2 3 4; do
	head -c 1M /dev/urandom >"$T/c$i.in"
	(
		"$HUTCH" exec d -- sh -c '
			touch /tmp/conc.'"$i"'
			n=0
			while [ "$(ls /tmp/conc.* | wc -l)" -lt 4 ]; do
				n=$((n + 1)); [ $n -lt 600 ] || exit 99; sleep 0.1
			done
			cat; echo "session '"$i"'" >&2; exit '"$((10 + i))" <"$T/c$i.in" >"$T/c$i.out" 2>"$T/c$i.err"
		echo $? >"$T/c$i.rc"
	) &
done
wait
for i in 1 2 3 4; do
	is "$(cat "$T/c$i.rc")" "$((10 + i))" "concurrent session $i: its own exit status"
	ok "concurrent session $i: its own stdout, byte for byte" cmp -s "$T/c$i.in" "$T/c$i.out"
	is "$(cat "$T/c$i.err")" "session $i" "concurrent session $i: its own stderr"
done

# ---- -e, -w, -u, -t ----
run hutch exec d -e FOO=bar -e 'EQ=a=b c' -- sh -c 'echo "$FOO|$EQ"'
is "$OUT" "bar|a=b c" "-e K=V sets the environment (values may hold '=' and spaces)"
run hutch exec d -w /tmp -- pwd
is "$OUT" "/tmp" "-w DIR sets the working directory"
run hutch exec d -u nobody -- id -u
is "$OUT" "65534" "-u nobody runs as uid 65534"
run hutch exec d -w /nonexistent-dir -- true
ok "-w to a missing directory fails (exit $RC)" test "$RC" -ne 0
run hutch exec d -t -- sh -c 'test -t 0 && test -t 1 && echo tty'
is "$(printf '%s' "$OUT" | tr -d '\r')" "tty" "-t gives the program a terminal (a pty: CRLF output)"
run hutch exec d -- sh -c 'test -t 1 && echo tty || echo notty'
is "$OUT" "notty" "without -t and without a local terminal, no pty"
run hutch exec -e FOO=bar d -- sh -c 'echo "$FOO"'
is "$OUT" "bar" "options before NAME work too"

# ---- exec on a VM that is not running ----
run hutch create s --template micro
run hutch exec s -- true
is "$RC" 1 "exec on a stopped VM exits 1"
like "$ERR" "hutch run" "the error suggests 'hutch run'"
run hutch exec ghost -- true
is "$RC" 1 "exec on an undefined VM exits 1"
like "$ERR" "no VM named 'ghost'" "the error names the missing VM"

# ---- the fork-and-exit launcher: exec waits for the whole session ----
run hutch exec d -- rm -f /tmp/marker
run hutch exec d -- sh -c '(sleep 3; touch /tmp/marker) </dev/null >/dev/null 2>&1 & exit 0'
is "$RC" 0 "the launcher exec exits 0"
run hutch exec d -- test -e /tmp/marker
is "$RC" 0 "exec returned only after the launcher's background child finished (marker exists)"

# ---- Ctrl-C reaches the guest program ----
sigdflt=()
env --default-signal=INT true 2>/dev/null && sigdflt=(env --default-signal=INT)
# The trap also ends the background sleep: a non-interactive sh starts `&` jobs with SIGINT
# ignored, and exec rightly waits for everything left in the program's session.
"${sigdflt[@]}" "$HUTCH" exec d -- sh -c 'trap "echo got-int; kill \$! 2>/dev/null; exit 5" INT; echo ready; sleep 30 & wait' \
	>"$T/int.out" 2>"$T/int.err" &
cli=$!
if wait_until 60 grep -q ready "$T/int.out"; then
	kill -INT "$cli"
	if wait_until 30 eval '! kill -0 $cli 2>/dev/null'; then
		wait "$cli"
		is "$?" 5 "SIGINT to hutch exec: the guest trap ran and its exit status 5 came back"
	else
		kill -9 "$cli" 2>/dev/null
		fail "SIGINT to hutch exec: the guest trap ran and its exit status 5 came back" "hutch exec still running 30 s after SIGINT"
	fi
	contains "$(cat "$T/int.out")" "got-int" "the guest program saw SIGINT"
else
	kill -9 "$cli" 2>/dev/null
	fail "SIGINT to hutch exec: the guest trap ran and its exit status 5 came back" "the guest program never printed 'ready'" "$(cat "$T/int.err")"
	fail "the guest program saw SIGINT"
fi

# ---- cp ----
src=$T/src
mkdir -p "$src/sub"
echo hello >"$src/a.txt"
echo deep >"$src/sub/b.txt"
printf '#!/bin/sh\necho tool\n' >"$src/sub/tool"
chmod 0750 "$src/sub/tool"
ln -s sub/b.txt "$src/link"

run hutch cp "$src/a.txt" d:/tmp/a.txt
is "$RC" 0 "cp host file -> guest exits 0"
run hutch exec d -- cat /tmp/a.txt
is "$OUT" "hello" "the copied file has its content in the guest"

run hutch cp -r "$src" d:/tmp/tree
is "$RC" 0 "cp -r host dir -> guest exits 0"
run hutch exec d -- cat /tmp/tree/sub/b.txt
is "$OUT" "deep" "cp -r copied the subdirectory"
run hutch exec d -- stat -c %a /tmp/tree/sub/tool
is "$OUT" "750" "cp -r kept mode 0750"
run hutch exec d -- readlink /tmp/tree/link
is "$OUT" "sub/b.txt" "cp -r kept the symlink as a symlink"

run hutch cp d:/tmp/a.txt "$T/back.txt"
is "$RC" 0 "cp guest file -> host exits 0"
is "$(cat "$T/back.txt" 2>/dev/null)" "hello" "the file came back with its content"

run hutch cp -r d:/tmp/tree "$T/back"
is "$RC" 0 "cp -r guest dir -> host exits 0"
is "$(cat "$T/back/sub/b.txt" 2>/dev/null)" "deep" "cp -r back: subdirectory content"
is "$(stat -c %a "$T/back/sub/tool" 2>/dev/null)" "750" "cp -r back: mode 0750 kept"
ok "cp -r back: symlink is a symlink" test -L "$T/back/link"
is "$(readlink "$T/back/link")" "sub/b.txt" "cp -r back: symlink target kept"
ok "cp -r back: the whole tree is identical" diff -r "$src" "$T/back"

run hutch cp d:/tmp/tree "$T/nodir"
is "$RC" 1 "cp of a guest directory without -r exits 1"
like "$ERR" "directory.*-r|-r.*directory" "the error says it is a directory and suggests -r"
ok "nothing was written on the host" test ! -e "$T/nodir"

run hutch cp "$src" d:/tmp/nodir
is "$RC" 1 "cp of a host directory without -r exits 1"
run hutch exec d -- test -e /tmp/nodir
is "$RC" 1 "nothing was written in the guest"

run hutch stop d
is "$RC" 0 "stop d"

done_testing
