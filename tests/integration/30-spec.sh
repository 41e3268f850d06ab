#!/usr/bin/env bash
# Spec files: hutch.yml with several VMs, --from FILE, a broken spec that lists as "broken"
# without hiding the others, and YAML errors that name file:line. Boots nothing.
. "$(dirname "$0")/lib.sh"

mkdir -p "$HUTCH_HOME/config"
cat >"$HUTCH_HOME/config/hutch.yml" <<'EOF'
# two VMs in one file
web:
  source: {template: micro}
  memory: 256M
db:
  source:
    template: micro
  memory: 384M
  cpus: 2
EOF

run hutch create web
is "$RC" 0 "create web picks its definition from hutch.yml"
run hutch create db
is "$RC" 0 "create db from the same hutch.yml"
run hutch list -a
like "$OUT" '^web +stopped +qemu +- +256M +1 ' "web has hutch.yml's memory"
like "$OUT" '^db +stopped +qemu +- +384M +2 ' "db has hutch.yml's memory and cpus"

run hutch create web2 --template micro --memory 1G --cpus 3
is "$RC" 0 "create with --memory and --cpus overrides"
run hutch list -a --json
is "$(json_get "$OUT" '[(v["memory"],v["cpus"]) for v in j if v["name"]=="web2"][0]')" "(1073741824, 3)" "overrides land in the spec"

cat >"$T/other.yml" <<'EOF'
other:
  source: {template: micro}
  memory: 300M
spare:
  source: {template: micro}
EOF
run hutch create other --from "$T/other.yml"
is "$RC" 0 "create --from FILE"
run hutch list -a
like "$OUT" '^other +stopped +qemu +- +300M ' "the --from VM has its file's memory"
unlike "$OUT" '^spare ' "--from creates only the named VM"

run hutch create absent --from "$T/other.yml"
is "$RC" 1 "--from a file without that VM exits 1"
like "$ERR" "no VM named 'absent'" "--from names the missing VM"

run hutch create nofile --from "$T/nope.yml"
is "$RC" 1 "--from a missing file exits 1"
contains "$ERR" "$T/nope.yml" "--from a missing file names it"

# Hand-broken resolved spec: that VM is "broken", every other VM still lists.
echo 'garbage: [: {' >"$HUTCH_HOME/data/vms/db/spec.yml"
run hutch list -a
is "$RC" 0 "list -a exits 0 with one broken spec"
like "$OUT" '^db +broken' "the broken VM lists as broken"
like "$OUT" '^web +stopped' "web still lists"
like "$OUT" '^other +stopped' "other still lists"
run hutch list -a --json
is "$(json_get "$OUT" '[v["state"] for v in j if v["name"]=="db"][0]')" broken "list --json: broken"
like "$(json_get "$OUT" '[v.get("error","") for v in j if v["name"]=="db"][0]')" 'spec\.yml:[0-9]+' "list --json: the error names spec.yml:line"
run hutch start db
is "$RC" 1 "start of a broken VM exits 1"
like "$ERR" 'spec\.yml:[0-9]+' "start of a broken VM names spec.yml:line"
is "$(qemu_count)" 0 "no QEMU for a broken VM"
run hutch destroy db
is "$RC" 0 "a broken VM can still be destroyed"

# YAML errors name file:line.
cat >"$T/typo.yml" <<'EOF'
typo:
  source: {template: micro}
  memry: 300M
EOF
run hutch create typo --from "$T/typo.yml"
is "$RC" 1 "unknown key exits 1"
contains "$ERR" "$T/typo.yml:3: memry" "unknown key: file:line: key"

printf 'bad:\n  source: {template: micro}\n  memory: [1,\n' >"$T/syntax.yml"
run hutch create bad --from "$T/syntax.yml"
is "$RC" 1 "YAML syntax error exits 1"
like "$ERR" "$T/syntax.yml:[0-9]+: " "YAML syntax error names file:line"

printf 'size:\n  source: {template: micro}\n  memory: 12Q\n' >"$T/size.yml"
run hutch create size --from "$T/size.yml"
is "$RC" 1 "bad size exits 1"
contains "$ERR" "$T/size.yml:3: memory" "bad size: file:line: key"

printf 'a: &x\n  source: {template: micro}\nb: *x\n' >"$T/alias.yml"
run hutch create b --from "$T/alias.yml"
is "$RC" 1 "YAML aliases are rejected"
like "$ERR" 'alias' "the alias error says so"

# A broken hutch.yml names its line too.
printf 'fresh:\n  source: {template: micro}\n  cpus: two\n' >"$HUTCH_HOME/config/hutch.yml"
run hutch create fresh
is "$RC" 1 "create from a broken hutch.yml exits 1"
like "$ERR" 'hutch\.yml:[0-9]+' "the hutch.yml error names file:line"

done_testing
