#!/usr/bin/env bash
# A shared home (home: true): the per-VM host dir is made on first start and filled from
# home-template, mounted as root's home in micro, and kept when `run --rm` throws the VM away; --share
# on run; inspect of a stopped VM shows its planned shares.
# once
# timeout: 900
. "$(dirname "$0")/lib.sh"
exec </dev/null

mkdir -p "$HUTCH_HOME/config/home-template/.config"
echo template-rc >"$HUTCH_HOME/config/home-template/.config/rc"
chmod 0600 "$HUTCH_HOME/config/home-template/.config/rc"
cat >"$HUTCH_HOME/config/hutch.yml" <<'EOF2'
hm:
  source: {template: micro}
  home: true
EOF2
home=$HUTCH_HOME/data/homes/hm

run hutch run --rm hm -- sh -c 'cat /root/.config/rc; stat -c %a /root/.config/rc; echo one > /root/counter; echo mine > /root/.config/rc; grep " /root " /proc/mounts | cut -d" " -f1,3'
is "$RC" 0 "run --rm of a spec with home: true"
like "$OUT" '^template-rc$' "the home was filled from home-template"
like "$OUT" '^600$' "the template's modes are kept"
like "$OUT" '^home 9p$' "root's home is the 9p share tagged home"
is "$(cat "$home/counter" 2>&1)" one "the guest's write is in the host dir"
is "$(hutch list -a 2>/dev/null | grep -c '^hm-')" 0 "the disposable VM is gone"

run hutch run --rm hm -- sh -c 'cat /root/counter /root/.config/rc'
is "$RC" 0 "a second run --rm"
is "$OUT" "$(printf 'one\nmine')" "the home was kept across disposable VMs, and not filled again"

# --share on run
mkdir -p "$T/d"
echo shared-by-flag >"$T/d/f"
run hutch run --rm --share "$T/d:/mnt/d:ro" micro -- sh -c 'cat /mnt/d/f; touch /mnt/d/x'
is "$(printf '%s\n' "$OUT" | head -1)" shared-by-flag "run --rm --share: the guest reads the share"
like "$ERR" 'Read-only file system' "run --share :ro is read-only"

# a stopped VM: inspect shows the plan; home: PATH
mkdir -p "$T/myhome"
cat >"$T/h2.yml" <<EOF2
h2:
  source: {template: micro}
  home: $T/myhome
EOF2
run hutch create h2 --from "$T/h2.yml"
run hutch inspect h2 --json
is "$(json_get "$OUT" 'j["shares"][0]["host"]')" "$T/myhome" "inspect (stopped): the home's host dir"
is "$(json_get "$OUT" 'j["shares"][0]["mount"] + " " + j["shares"][0]["state"]')" "/root stopped" \
	"inspect (stopped): mounted at /root once running"
run hutch run --share "$T/d:/mnt/d" h2 -- true
is "$RC" 2 "run --share on an existing VM is a usage error"
like "$ERR" "--share applies to a VM that run creates" "and says why"

done_testing
