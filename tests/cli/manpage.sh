#!/bin/sh
# Every verb, subcommand and long option in the verb tables appears in docs/hutch.1, in that verb's
# entry (the text from its ".B VERB" line to the next ".TP" or ".SH"). --json is a global option.
# One awk pass over the man page and the list (a process per line took 30 s on a loaded machine).
set -eu
hutch=$1 man=$2
list=${TMPDIR:-/tmp}/hutch-list.$$
trap 'rm -f "$list"' EXIT
"$hutch" completion list >"$list"
sed 's/\\-/-/g; s/\\f[BIR]//g' "$man" | awk -v listfile="$list" '
	BEGIN {
		while ((getline line < listfile) > 0) {
			lines[++nl] = line
			split(line, f, " ")
			isverb[f[1]] = 1
		}
	}
	# the man page on stdin: each ".B VERB" entry collects its lines until the next .TP or .SH
	/^\.(TP|SH)/ { cur = "" }
	$1 == ".B" && ($2 in isverb) { cur = $2; has[cur] = 1 }
	cur != "" { text[cur] = text[cur] "\n" $0 }
	END {
		fail = 0
		for (k = 1; k <= nl; k++) {
			n = split(lines[k], f, " ")
			verb = f[1]
			if (!(verb in has)) {
				if (!(verb in told)) printf "docs/hutch.1: no entry %c.B %s%c\n", 39, verb, 39 > "/dev/stderr"
				told[verb] = 1
				fail = 1
				continue
			}
			word = n >= 3 ? f[3] : (n == 2 ? f[2] : "")
			if (word == "" || word == "--json") continue
			# word followed by a non-word character or the end of a line (grep -e "word\b")
			t = text[verb] "\n"
			found = 0
			while ((i = index(t, word)) > 0) {
				c = substr(t, i + length(word), 1)
				if (c !~ /[A-Za-z0-9_]/) { found = 1; break }
				t = substr(t, i + 1)
			}
			if (!found) {
				printf "docs/hutch.1: %c%s%c does not mention %c%s%c\n", 39, verb, 39, 39, word, 39 > "/dev/stderr"
				fail = 1
			}
		}
		exit fail
	}'
