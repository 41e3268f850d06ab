#!/usr/bin/env bash
# hutch setup: on a fresh HUTCH_HOME --check lists what would change and changes nothing; setup does
# it and prints each change; then it has nothing to do, and --check agrees. libvirt.conf gets one
# uri_default line, and a user's own uri_default is left alone.
. "$(dirname "$0")/lib.sh"

conf=$HUTCH_HOME/config/libvirt/libvirt.conf
have_libvirt=no
if command -v virsh >/dev/null 2>&1 || ls /usr/lib/*/libvirt.so.0 /usr/lib64/libvirt.so.0 >/dev/null 2>&1; then
	have_libvirt=yes
fi

run hutch setup --check
is "$RC" 1 "setup --check on a fresh home exits 1"
like "$OUT" "^would create directory $HUTCH_HOME/config\$" "it would create the config dir"
like "$OUT" "^would create directory $HUTCH_HOME/run\$" "it would create the runtime dir"
like "$OUT" "^would write $HUTCH_HOME/config/config.yml" "it would write config.yml"
like "$OUT" "^would build the micro template \(kernel [^)]+\) in $HUTCH_HOME/cache/micro\$" "it would build the micro template"
is "$(ls -A "$HUTCH_HOME")" "" "--check changed nothing"

run hutch setup --check --json
is "$RC" 1 "setup --check --json exits 1 too"
is "$(json_get "$OUT" 'sum(1 for s in j["steps"] if s["needed"] and not s["done"])>=6 and j["check"]')" True "--json lists the needed steps"

run hutch setup
is "$RC" 0 "setup exits 0"
like "$OUT" "^created directory $HUTCH_HOME/data\$" "it prints the dirs it created"
like "$OUT" "^wrote $HUTCH_HOME/config/config.yml" "it prints that it wrote config.yml"
like "$OUT" "^built the micro template \(kernel [^)]+\) in $HUTCH_HOME/cache/micro/" "it prints that it built the template"
ok "the initramfs is cached" test -s "$(ls -d "$HUTCH_HOME"/cache/micro/*/)initramfs.cpio"
contains "$(cat "$HUTCH_HOME/config/config.yml")" "# backend: qemu" "config.yml holds the commented defaults"
is "$(stat -c %a "$HUTCH_HOME/run")" 700 "the runtime dir is private"
if [ $have_libvirt = yes ]; then
	like "$OUT" "^added uri_default = \"qemu:///session\" to $conf\$" "it prints the libvirt.conf change"
	is "$(cat "$conf")" 'uri_default = "qemu:///session"' "libvirt.conf holds the one line"
else
	ok "no libvirt: libvirt.conf is not written" test ! -e "$conf"
	pass "# SKIP libvirt is not installed"
fi

run hutch setup
is "$RC:$OUT" "0:nothing to do" "a second setup has nothing to do"
run hutch setup --check
is "$RC:$OUT" "0:nothing to do" "--check then exits 0 with nothing to do"
run hutch setup --json
is "$(json_get "$OUT" 'sum(1 for s in j["steps"] if s["needed"])')" 0 "--json: no step needed"
if [ $have_libvirt = yes ]; then
	is "$(grep -c uri_default "$conf")" 1 "libvirt.conf still has one uri_default line"
fi

# a VM created after setup starts without building anything
run hutch create v --template micro
is "$RC" 0 "create after setup"

# another home whose libvirt.conf already picks a URI: respected, the rest kept
if [ $have_libvirt = yes ]; then
	other=$T/other
	mkdir -p "$other/config/libvirt"
	printf '# mine\nuri_default = "qemu:///system"\n' >"$other/config/libvirt/libvirt.conf"
	run env HUTCH_HOME="$other" "$HUTCH" setup --check
	unlike "$OUT" "uri_default" "an existing uri_default is not touched (--check)"
	run env HUTCH_HOME="$other" "$HUTCH" setup
	is "$(cat "$other/config/libvirt/libvirt.conf")" "$(printf '# mine\nuri_default = "qemu:///system"')" "an existing uri_default is kept as it is"
	printf '#uri_default = "qemu:///system"\nauth_tls = 1' >"$other/config/libvirt/libvirt.conf"
	run env HUTCH_HOME="$other" "$HUTCH" setup
	is "$(cat "$other/config/libvirt/libvirt.conf")" "$(printf '#uri_default = "qemu:///system"\nauth_tls = 1\nuri_default = "qemu:///session"')" "a commented one does not count; the rest is kept"
	rm -rf "$other"
fi

done_testing
