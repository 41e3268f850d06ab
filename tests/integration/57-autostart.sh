#!/usr/bin/env bash
# hutch autostart: the systemd user unit is written, enabled (the wants link), and its ExecStart and
# ExecStop, run by hand as systemd would run them, start and stop the VM. off, destroy and a spec's
# `autostart: true` are covered too. No user manager runs here: systemd is never asked to start it.
. "$(dirname "$0")/lib.sh"

units=$HUTCH_HOME/config/systemd/user
unit=$units/hutch-web.service
link=$units/default.target.wants/hutch-web.service

# unit_exec KEY FILE: the command line of ExecStart= or ExecStop=, unescaped for the shell ("%%", "$$").
unit_exec()
{
	sed -n "s/^$1=//p" "$2" | sed 's/%%/%/g; s/\$\$/$/g'
}

# unit_env FILE: the Environment= assignments, unquoted.
unit_env()
{
	sed -n 's/^Environment=//p' "$1" | sed 's/^"\(.*\)"$/\1/'
}

# as_systemd FILE KEY: run the unit's command the way the user manager would: a clean environment
# holding only what the unit sets (and a PATH, HOME and USER, which the manager provides).
as_systemd()
{
	local cmd env
	cmd=$(unit_exec "$2" "$1")
	env=$(unit_env "$1")
	eval "set -- $cmd"
	timeout -k 5 "$HUTCH_CMD_TIMEOUT" env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$HOME" USER="$(id -un)" \
		${env:+"$env"} "$@"
}

run hutch create web --template micro
is "$RC" 0 "create web"

run hutch autostart web
is "$OUT" off "autostart NAME says off before"

run hutch autostart web on
is "$RC" 0 "autostart web on exits 0"
like "$OUT" "^autostart on for web: $unit\$" "it prints the unit's path"
like "$ERR" "warning: HUTCH_HOME is set.*systemctl --user enable $unit" "with HUTCH_HOME it says how to hand the unit to systemd"
ok "the unit file is written" test -f "$unit"
is "$(readlink "$link")" "../hutch-web.service" "default.target.wants links it (enabled)"
text=$(cat "$unit")
contains "$text" "ExecStart=$HUTCH start web" "ExecStart is the absolute hutch path, start NAME"
contains "$text" "ExecStop=$HUTCH stop web" "ExecStop is hutch stop NAME"
contains "$text" "Environment=HUTCH_HOME=$HUTCH_HOME" "HUTCH_HOME is carried as Environment="
contains "$text" "Type=oneshot" "Type=oneshot"
contains "$text" "RemainAfterExit=yes" "RemainAfterExit=yes"
contains "$text" "WantedBy=default.target" "WantedBy=default.target"
is "$(stat -c %a "$unit")" 644 "the unit is 0644"

if command -v systemd-analyze >/dev/null 2>&1; then
	mkdir -p "$T/rt" && chmod 700 "$T/rt"
	run env XDG_RUNTIME_DIR="$T/rt" systemd-analyze verify --user --man=no "$unit"
	is "$RC:$OUT$ERR" "0:" "systemd-analyze verify --user accepts the unit, silently"
else
	pass "# SKIP systemd-analyze is not installed (apt-get install systemd)"
fi

run hutch autostart web on
is "$RC" 0 "autostart on twice exits 0"
like "$OUT" "\(unchanged\)" "the second on changes nothing"

run hutch autostart web
is "$OUT" on "autostart NAME says on"
run hutch autostart web --json
is "$(json_get "$OUT" 'str(j["autostart"])+" "+j["unit"]')" "True $unit" "autostart NAME --json"

# what systemd would run at boot, then at shutdown
run as_systemd "$unit" ExecStart
is "$RC" 0 "ExecStart, run by hand in a clean environment, exits 0"
like "$OUT" '^started web' "ExecStart started web"
run hutch list
like "$OUT" '^web +running ' "web is running"
run as_systemd "$unit" ExecStop
is "$RC" 0 "ExecStop, run by hand, exits 0"
like "$OUT" '^stopped web' "ExecStop stopped web"
ok "no QEMU is left" wait_until 10 no_qemu
run hutch list -a
like "$OUT" '^web +stopped' "web is stopped"

run hutch autostart web off
is "$RC" 0 "autostart web off exits 0"
like "$OUT" "^autostart off for web: $unit\$" "off prints the unit's path"
ok "off removes the unit" test ! -e "$unit"
ok "off removes the wants link" test ! -L "$link"
run hutch autostart web off
like "$OUT" "\(unchanged\)" "off twice changes nothing"

run hutch autostart web maybe
is "$RC" 2 "autostart NAME maybe is a usage error"
run hutch autostart nosuch on
is "$RC" 1 "autostart on for a VM that does not exist fails"
like "$ERR" "no VM named 'nosuch'" "and says so"
ok "and writes no unit" test ! -e "$units/hutch-nosuch.service"

run hutch autostart web on
run hutch destroy web
is "$RC" 0 "destroy web"
ok "destroy removes the unit" test ! -e "$unit"
ok "destroy removes the wants link" test ! -L "$link"

cat >"$T/spec.yml" <<'YML'
boot:
  source: {template: micro}
  memory: 256M
  autostart: true
boot2:
  source: {template: micro}
  autostart: true
YML
run hutch create boot --from "$T/spec.yml"
is "$RC" 0 "create from a spec with autostart: true"
ok "create wrote the unit" test -f "$units/hutch-boot.service"
is "$(readlink "$units/default.target.wants/hutch-boot.service")" "../hutch-boot.service" "and enabled it"
like "$ERR" "warning: .*systemctl --user enable" "create passes the warning on"
run hutch inspect boot --json
is "$(json_get "$OUT" 'str(j.get("autostart"))')" True "inspect --json shows autostart"
run hutch list -a --json
is "$(json_get "$OUT" '[str(v.get("autostart")) for v in j if v["name"]=="boot"][0]')" True "list --json shows autostart"
run hutch destroy boot
ok "destroy removes a spec's unit" test ! -e "$units/hutch-boot.service"
run hutch create boot2 --from "$T/spec.yml" --json
is "$(json_get "$OUT" 'str(j["created"])+" "+str(any("systemctl --user enable" in w for w in j["warnings"]))')" "True True" \
	"create --json carries the warning"
is "$ERR" "" "and prints nothing on stderr"
run hutch destroy boot2

# Without HUTCH_HOME: the XDG unit dir, and systemctl/loginctl failing (no user manager runs) are
# warnings naming the command, not errors. Only where systemd is not PID 1, so a developer's
# machine never gets linger enabled for the test user.
if [ ! -d /run/systemd/system ]; then
	xdg=$T/xdg
	mkdir -p "$xdg"
	xrun()
	{
		env -u HUTCH_HOME HOME="$xdg" XDG_CONFIG_HOME="$xdg/config" XDG_DATA_HOME="$xdg/data" \
			XDG_CACHE_HOME="$xdg/cache" XDG_RUNTIME_DIR= "$@"
	}
	run xrun "$HUTCH" create plain --template micro
	is "$RC" 0 "create plain in an XDG home"
	run xrun "$HUTCH" autostart plain on
	is "$RC" 0 "autostart on exits 0 when systemctl and loginctl cannot do their part"
	ok "the unit is in \$XDG_CONFIG_HOME/systemd/user" test -f "$xdg/config/systemd/user/hutch-plain.service"
	like "$ERR" "systemctl --user daemon-reload" "the warning names systemctl --user daemon-reload"
	like "$ERR" "loginctl enable-linger $(id -un)" "the warning names loginctl enable-linger USER"
	unlike "$(cat "$xdg/config/systemd/user/hutch-plain.service")" '^Environment=' "no Environment= without HUTCH_HOME"
	run xrun "$HUTCH" destroy --json plain
	ok "destroy removes it" test ! -e "$xdg/config/systemd/user/hutch-plain.service"
	is "$(json_get "$OUT" 'str(j["destroyed"])+" "+str(any("daemon-reload" in w for w in j["warnings"]))')" "True True" \
		"destroy --json carries the daemon-reload warning"
else
	pass "# SKIP systemd runs here: the XDG case would touch the real user manager"
fi

done_testing
