#!/usr/bin/env bash
# Exit codes (0 ok, 1 error, 2 usage) and clear errors for bad input. Boots nothing.
. "$(dirname "$0")/lib.sh"

run hutch --version
is "$RC" 0 "--version exits 0"
like "$OUT" '^hutch [0-9]' "--version prints 'hutch VERSION'"

run hutch
is "$RC" 2 "no verb exits 2"

run hutch frobnicate
is "$RC" 2 "unknown verb exits 2"
like "$ERR" "unknown verb 'frobnicate'" "unknown verb is named"

run hutch list --frobnicate
is "$RC" 2 "unknown option exits 2"
like "$ERR" 'usage: hutch list' "unknown option prints the verb's usage"

run hutch start
is "$RC" 2 "missing argument exits 2"

run hutch help start
is "$RC" 0 "help VERB exits 0"
like "$OUT" '^usage: hutch start' "help VERB prints its usage"

# Invalid names are rejected before any file access: nothing appears in HUTCH_HOME.
long=$(printf 'a%.0s' $(seq 64))
for bad in '../x' 'a/b' '' 'UPPER' "$long" 'a b' '.hidden'; do
	rm -rf "$HUTCH_HOME" && mkdir -p "$HUTCH_HOME"
	run hutch create "$bad" --template micro
	is "$RC" 1 "create '${bad:0:12}' exits 1"
	like "$ERR" 'invalid VM name|must not be empty' "create '${bad:0:12}' says invalid VM name"
	is "$(find "$HUTCH_HOME" -mindepth 1 | wc -l)" 0 "create '${bad:0:12}' created no files"
done
for verb in start stop destroy inspect logs; do
	rm -rf "$HUTCH_HOME" && mkdir -p "$HUTCH_HOME"
	run hutch "$verb" '../etc'
	is "$RC" 1 "$verb '../etc' exits 1"
	like "$ERR" 'invalid VM name' "$verb '../etc' says invalid VM name"
	is "$(find "$HUTCH_HOME" -mindepth 1 | wc -l)" 0 "$verb '../etc' created no files"
done

# 63 characters is the longest valid name.
run hutch create "${long:1}" --template micro
is "$RC" 0 "a 63-character name is valid"

run hutch create big --template micro --memory lots
is "$RC" 2 "create --memory lots exits 2"
like "$ERR" "invalid size 'lots'" "create --memory lots names the bad size"
ok "create --memory lots created no VM" test ! -e "$HUTCH_HOME/data/vms/big"

run hutch create cpus --template micro --cpus many
is "$RC" 2 "create --cpus many exits 2"

run hutch start ghost
is "$RC" 1 "start of an undefined VM exits 1"
like "$ERR" "no VM named 'ghost'" "start of an undefined VM says no VM named"

run hutch create nospec
is "$RC" 1 "create without a template or spec exits 1"
like "$ERR" 'hutch.yml' "create without a spec points at hutch.yml"

run hutch create twice --template micro
run hutch create twice --template micro
is "$RC" 1 "create of an existing VM exits 1"
like "$ERR" "twice" "create of an existing VM names it"

# A HUTCH_HOME so long that the runtime sockets overflow sun_path (108 bytes).
longhome=$T/$(printf 'd%.0s' $(seq 110))
mkdir -p "$longhome"
run env HUTCH_HOME="$longhome" "$HUTCH" create demo --template micro
run env HUTCH_HOME="$longhome" timeout 60 "$HUTCH" start demo
is "$RC" 1 "start under an overlong HUTCH_HOME exits 1"
contains "$ERR" "$longhome/run/demo/" "the sun_path error names the socket path"
like "$ERR" 'longer than|too long' "the sun_path error says it is too long"
is "$(HUTCH_HOME=$longhome qemu_count)" 0 "no QEMU was started"

done_testing
