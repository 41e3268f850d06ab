#!/usr/bin/env bash
# Instances of one spec side by side (-i): each gets its own VM and its own forwards. A forward's
# host port 0 means any free port, chosen at start; a fixed host port that is taken is a clear
# error naming the port. Two micro VMs boot for this.
. "$(dirname "$0")/lib.sh"

cat >"$T/web.yml" <<'YML'
web:
  source: {template: micro}
  memory: 256M
  network: {mode: user, forward: ["0:8080", "0:5353/udp"]}
YML

for i in a b; do
	run hutch create web --from "$T/web.yml" -i "$i"
	is "$RC" 0 "create web -i $i"
	like "$OUT" "^created web-$i" "the instance is named web-$i"
done
run hutch inspect --render web-a
contains "$OUT" "hostfwd=tcp:127.0.0.1:0-:8080" "render shows port 0 (chosen at start)"

hutch start --timeout 150 web -i a >"$T/a.out" 2>"$T/a.err" &
pa=$!
hutch start --timeout 150 web -i b >"$T/b.out" 2>"$T/b.err" &
pb=$!
wait $pa
ra=$?
wait $pb
rb=$?
is "$ra $rb" "0 0" "both instances start at once"

declare -A tcp=() udp=()
for i in a b; do
	run hutch port web-$i ls
	is "$RC" 0 "port web-$i ls"
	tcp[$i]=$(printf '%s\n' "$OUT" | sed -n 's/^127\.0\.0\.1:\([0-9]*\):8080\/tcp$/\1/p')
	udp[$i]=$(printf '%s\n' "$OUT" | sed -n 's/^127\.0\.0\.1:\([0-9]*\):5353\/udp$/\1/p')
	like "${tcp[$i]:-none}" '^[1-9][0-9]*$' "web-$i: 0:8080 became a real host port (${tcp[$i]:-none})"
	like "${udp[$i]:-none}" '^[1-9][0-9]*$' "web-$i: 0:5353/udp became a real host port (${udp[$i]:-none})"
	ok "web-$i: QEMU listens on 127.0.0.1:${tcp[$i]:-0}" \
		bash -c "exec 3<>/dev/tcp/127.0.0.1/${tcp[$i]:-0}"
done
[ "${tcp[a]}" != "${tcp[b]}" ] && pass "the instances' tcp forwards differ (${tcp[a]} vs ${tcp[b]})" ||
	fail "the instances' tcp forwards differ" "${tcp[a]} vs ${tcp[b]}"

# A runtime forward with port 0 gets a free port as well.
run hutch port web-a add 0:99
is "$RC" 0 "port web-a add 0:99"
like "$OUT" '^127\.0\.0\.1:[1-9][0-9]*:99/tcp$' "the added forward has a real host port"
unlike "$OUT" '^127\.0\.0\.1:0:' "no forward is left at port 0"

# A fixed host port that an instance holds: a clear error, and no QEMU for it.
cat >"$T/fixed.yml" <<YML
fixed:
  source: {template: micro}
  network: {mode: user, forward: ["${tcp[a]}:80"]}
YML
run hutch create fixed --from "$T/fixed.yml"
is "$RC" 0 "create fixed (forward ${tcp[a]}:80)"
run hutch start fixed
is "$RC" 1 "start fixed fails: its host port is taken"
contains "$ERR" "start 'fixed': port ${tcp[a]}/tcp is already in use on the host" "the error names the VM and the port"
contains "$ERR" "forward 0:80 for any free port" "the error says how to get any free port"
is "$(qemu_count)" 2 "only the two instances' QEMUs run"
run hutch list -a
like "$OUT" '^fixed +stopped' "fixed is listed as stopped"

printf 'bad:\n  source: {template: micro}\n  network: {mode: user, forward: ["0:0"]}\n' >"$T/bad.yml"
run hutch create bad --from "$T/bad.yml"
is "$RC" 1 "a guest port 0 is refused at create"
contains "$ERR" "(HOST 0: any free port)" "the error explains the forms"

for i in a b; do
	run hutch stop web -i $i
	is "$RC" 0 "stop web -i $i"
done
ok "no QEMU left" wait_until 30 no_qemu

done_testing
