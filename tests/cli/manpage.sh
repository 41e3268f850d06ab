#!/bin/sh
# Every verb, subcommand and long option in the verb tables appears in docs/hutch.1, in that verb's
# entry (the text from its ".B VERB" line to the next ".TP" or ".SH"). --json is a global option.
set -eu
hutch=$1 man=$2
fail=0
entry()
{
	sed 's/\\-/-/g; s/\\f[BIR]//g' "$man" | awk -v v="$1" '
		/^\.(TP|SH)/ { on = 0 }
		$1 == ".B" && $2 == v { on = 1 }
		on { print }'
}
"$hutch" completion list > "${TMPDIR:-/tmp}/hutch-list.$$"
while read -r verb a b; do
	text=$(entry "$verb")
	if [ -z "$text" ]; then
		echo "docs/hutch.1: no entry '.B $verb'" >&2
		fail=1
		continue
	fi
	word=${b:-$a}
	case $word in
	'' | --json) continue ;;
	esac
	if ! printf '%s\n' "$text" | grep -q -e "$word\\b"; then
		echo "docs/hutch.1: '$verb' does not mention '$word'" >&2
		fail=1
	fi
done < "${TMPDIR:-/tmp}/hutch-list.$$"
rm -f "${TMPDIR:-/tmp}/hutch-list.$$"
exit $fail
