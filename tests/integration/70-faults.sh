#!/usr/bin/env bash
# Faults on the host side: QEMU missing, kernel missing, agent missing, a guest that never says
# HELLO. Each is a clear error and leaves nothing running.
. "$(dirname "$0")/lib.sh"

run hutch create q --template micro
is "$RC" 0 "create q"

run env PATH=/nonexistent "$HUTCH" start q
is "$RC" 1 "start without qemu-system-x86_64 on PATH exits 1"
contains "$ERR" "qemu-system-x86" "the error names the package to install"
is "$(qemu_count)" 0 "nothing runs"
run hutch list -a
like "$OUT" '^q +stopped' "q is still stopped"

run env HUTCH_QEMU=/nonexistent/qemu "$HUTCH" start q
is "$RC" 1 "start with HUTCH_QEMU pointing nowhere exits 1"
contains "$ERR" "/nonexistent/qemu" "the error names HUTCH_QEMU's value"

run env HUTCH_AGENT=/nonexistent/agent "$HUTCH" start q
is "$RC" 1 "start with HUTCH_AGENT pointing nowhere exits 1"
contains "$ERR" "/nonexistent/agent" "the error names the missing agent"
is "$(qemu_count)" 0 "nothing runs"

cat >"$T/kernel.yml" <<EOF
nokernel:
  source: {template: micro}
  kernel: $T/vmlinuz-9.9.9-none
EOF
run hutch create nokernel --from "$T/kernel.yml"
is "$RC" 0 "create with a kernel: that does not exist (checked at start)"
run hutch start nokernel
is "$RC" 1 "start without the kernel exits 1"
contains "$ERR" "$T/vmlinuz-9.9.9-none" "the error names the missing kernel"
is "$(qemu_count)" 0 "nothing runs"

# A guest whose /init is a shell: the agent never says HELLO. start fails after --timeout, points
# at the console log, and leaves no QEMU behind.
cat >"$T/nohello.yml" <<'EOF'
nohello:
  source: {template: micro}
  cmdline: "rdinit=/bin/sh"
EOF
run hutch create nohello --from "$T/nohello.yml"
is "$RC" 0 "create nohello"
run hutch start --timeout 8 nohello
is "$RC" 1 "start of a guest that never says HELLO exits 1"
like "$ERR" 'HELLO' "the error says the agent did not say HELLO"
like "$ERR" 'hutch logs nohello|console\.log' "the error points at the console log"
ok "no QEMU is left after the failed start" wait_until 30 no_qemu
run hutch list -a
like "$OUT" '^nohello +stopped' "nohello lists as stopped"
run hutch logs nohello
is "$RC" 0 "logs of the failed start are readable"

# Someone else's lock file and stale sockets in the runtime dir do not confuse start.
mkdir -p "$HUTCH_HOME/run/q"
: >"$HUTCH_HOME/run/q/monitor.sock"
echo 99999999 >"$HUTCH_HOME/run/q/lock"
run hutch list -a
like "$OUT" '^q +stopped' "stale runtime files: q still lists as stopped"
run hutch start q
is "$RC" 0 "start works over stale runtime files"
run hutch stop q
is "$RC" 0 "stop q"

done_testing
