#!/usr/bin/env bash
# hutch shell and exec -t driven through a real pty by expect: a login shell that computes and
# exits with a status, Ctrl-C at the prompt, and window-size changes reaching the guest pty.
. "$(dirname "$0")/lib.sh"
exec </dev/null

if ! command -v expect >/dev/null; then
	echo "1..0 # SKIP expect is not installed"
	exit 0
fi

run hutch create d --template micro
is "$RC" 0 "create d --template micro"
run hutch start d
is "$RC" 0 "start d"

# expect exits with the spawned program's status, or 100+ when a step timed out (named on stderr).
cat >"$T/common.exp" <<'EOF'
set timeout 30
log_user 1
# A fixed size for the new pty, so the first `stty size` is known.
set stty_init "rows 30 columns 100"
# busybox ash's prompt, which it follows with a cursor-position query (ESC [ 6 n).
set prompt {[#$] (\x1b\[6n)?$}
proc step {code what} {
	send_error "\nexpect: gave up waiting for $what\n"
	exit $code
}
proc finish {} {
	expect {
		eof {}
		timeout { step 199 "the program to end" }
	}
	lassign [wait] pid sid oserr status
	exit $status
}
# resize ROWS COLS CMD: change the local pty's size (SIGWINCH to the CLI), then send CMD until
# "ROWS COLS" comes back, a bounded poll: the resize travels asynchronously.
proc resize {rows cols cmd code} {
	global spawn_out
	if {[catch {exec stty rows $rows columns $cols < $spawn_out(slave,name)} e]} {
		send_error "\nexpect: cannot resize the pty: $e\n"
		exit $code
	}
	for {set i 0} {$i < 20} {incr i} {
		send $cmd
		expect {
			-re "(^|\n)$rows $cols\r" { return }
			-re "(^|\n)\[0-9]+ \[0-9]+\r" { after 300 }
			timeout { step $code "'stty size' output" }
			eof { step $code "'stty size' output (the program ended)" }
		}
	}
	step $code "'$rows $cols' from stty size after the resize"
}
EOF

# ---- hutch shell: compute, exit with a status ----
cat >"$T/shell.exp" <<'EOF'
source $env(T)/common.exp
spawn -noecho $env(HUTCH) shell d
expect {
	-re $prompt {}
	timeout { step 101 "the shell prompt" }
	eof { step 101 "the shell prompt (the program ended)" }
}
send "echo \$((6*7)); exit 3\r"
expect {
	-re "\n42\r" {}
	timeout { step 102 "42" }
	eof { step 102 "42 (the program ended)" }
}
finish
EOF
run env T="$T" expect -f "$T/shell.exp"
is "$RC" 3 "hutch shell exits with the shell's status (exit 3)"
like "$OUT" '^42.?$' "the shell printed 42 for \$((6*7))"
unlike "$OUT" 'No such file|not found' "no error in the session"

# ---- hutch shell: Ctrl-C interrupts the foreground command, not the shell; resize ----
cat >"$T/shell2.exp" <<'EOF'
source $env(T)/common.exp
spawn -noecho $env(HUTCH) shell d
expect {
	-re $prompt {}
	timeout { step 101 "the shell prompt" }
	eof { step 101 "the shell prompt (the program ended)" }
}
send "stty size\r"
expect {
	-re "\n30 100\r" {}
	timeout { step 103 "'30 100' from stty size" }
	eof { step 103 "'30 100' from stty size (the program ended)" }
}
send "sleep 30; echo slept\r"
expect {
	"echo slept\r\n" {}
	timeout { step 104 "the echo of the sleep command" }
	eof { step 104 "the echo of the sleep command (the program ended)" }
}
after 1000
send "\003"
expect {
	-re $prompt {}
	timeout { step 104 "the prompt after Ctrl-C" }
	eof { step 104 "the prompt after Ctrl-C (the program ended)" }
}
send "echo still-\$((1+1))\r"
expect {
	-re "\nstill-2\r" {}
	timeout { step 105 "the shell to survive Ctrl-C" }
	eof { step 105 "the shell to survive Ctrl-C (the program ended)" }
}
resize 40 120 "stty size\r" 106
send "exit 0\r"
finish
EOF
run env T="$T" expect -f "$T/shell2.exp"
is "$RC" 0 "shell: Ctrl-C and resize session ends with status 0"
like "$OUT" '^30 100.?$' "shell: the guest pty starts with the local window size"
like "$OUT" 'still-2' "shell: Ctrl-C ends the foreground command and the shell lives on"
unlike "$OUT" '^slept.?$' "shell: the interrupted command did not finish"
like "$OUT" '^40 120.?$' "shell: a window resize reaches the guest pty"

# ---- exec -t: window size and resize ----
cat >"$T/exec.exp" <<'EOF'
source $env(T)/common.exp
spawn -noecho $env(HUTCH) exec d -t -- sh -c {stty size; while read x; do stty size; done; exit 4}
expect {
	-re "30 100\r" {}
	timeout { step 103 "'30 100' from stty size" }
	eof { step 103 "'30 100' from stty size (the program ended)" }
}
resize 50 132 "\r" 106
send "\004"
finish
EOF
run env T="$T" expect -f "$T/exec.exp"
is "$RC" 4 "exec -t: exit status comes back through the pty session"
like "$OUT" '30 100' "exec -t: the guest pty has the local window size"
like "$OUT" '50 132' "exec -t: a window resize reaches the guest pty"

run hutch stop d
is "$RC" 0 "stop d"

done_testing
