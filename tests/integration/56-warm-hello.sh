#!/usr/bin/env bash
# A restored clone whose agent does not answer the HELLO query (the hostile agent's flap mode
# answers only PING and EXEC) does not wait out the start timeout: it boots cold with one warning
# saying so, and the program runs there. The template stays (the agent in it is what is wrong).
# once
# timeout: 1200
. "$(dirname "$0")/lib.sh"
exec </dev/null

use_hostile_agent
printf 'hflap:\n  cmdline: hutch.hostile=flap\n' >"$T/hflap.yml"
run hutch create hflap --from "$T/hflap.yml"
is "$RC" 0 "create hflap (hutch.hostile=flap)"

HUTCH_CMD_TIMEOUT=600 run hutch template save hflap
is "$RC" 0 "template save hflap (the flap agent answers the saver's PING)"

# flap 1: the agent takes the EXEC, closes its port for 1 s and comes back, so the program's
# result is unknown (255); what matters is that it ran, on a cold boot after the silent restore.
HUTCH_CMD_TIMEOUT=300 run hutch -v run --rm hflap -- flap 1
is "$RC" 255 "run --rm: the program ran (its agent went away under it: 255)"
like "$ERR" "the clone of warm template 'hflap' did not answer after its restore; booting cold" \
	"the warning says the clone did not answer and that it booted cold"
is "$(grep 'warning' <<<"$ERR" | grep -vc 'using TCG')" 1 "one warning line (beside TCG's)"
unlike "$ERR" 'restored from template' "it is not reported as restored"
unlike "$ERR" 'did not say HELLO within' "it did not wait out the start timeout"
like "$ERR" "the guest agent in 'hflap-[0-9a-f]+' went away while 'flap' was running" \
	"the program ran on the cold-booted VM"
is "$(json_get "$(hutch template ls --json)" '[t["name"] for t in j]')" "['hflap']" "the template is kept"
n=0
for d in "$HUTCH_HOME"/data/vms/hflap-*/; do
	[ -d "$d" ] && n=$((n + 1))
done
is "$n" 0 "the disposable instance is removed"
ok "no QEMU left" wait_until 30 no_qemu
done_testing
