# bash completion for hutch
_hutch_vms()
{
	local dir
	if [ -n "${HUTCH_HOME:-}" ]; then
		dir=$HUTCH_HOME/data/vms
	else
		dir=${XDG_DATA_HOME:-$HOME/.local/share}/hutch/vms
	fi
	[ -d "$dir" ] && (cd "$dir" && ls -d -- */ 2>/dev/null | sed 's:/$::')
}

_hutch()
{
	local cur prev verb i
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD-1]}
	local verbs="create build start stop destroy list inspect console logs exec shell run cp ssh port image doctor help"
	verb=
	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		-*) ;;
		*) verb=${COMP_WORDS[i]}; break ;;
		esac
	done
	if [ -z "$verb" ]; then
		COMPREPLY=($(compgen -W "$verbs --json --quiet --verbose --version --help" -- "$cur"))
		return
	fi
	case $prev in
	--from) COMPREPLY=($(compgen -f -- "$cur")); return ;;
	--template) COMPREPLY=($(compgen -W "micro" -- "$cur")); return ;;
	--image) COMPREPLY=($(compgen -W "debian-12 ubuntu-24.04 fedora-41 arch" -- "$cur")); return ;;
	--checksum|-l|-p) return ;;
	--memory|--cpus|--disk|--timeout|-e|-w|-u|-i|--instance) return ;;
	esac
	local opts=
	case $verb in
	create) opts="--template --from --image --checksum --pull --instance --memory --cpus --disk" ;;
	build) opts="--from --image --checksum" ;;
	ssh) opts="-l -p --instance --" ;;
	port) [ "$COMP_CWORD" -ge 3 ] && { COMPREPLY=($(compgen -W "add rm ls" -- "$cur")); return; } ;;
	image) [ "$prev" = image ] && { COMPREPLY=($(compgen -W "ls pull rm prune" -- "$cur")); return; }
		opts="--checksum --force --json" ;;
	start) opts="--timeout --instance" ;;
	stop) opts="--force --timeout --instance" ;;
	destroy) opts="--disk --force --instance" ;;
	list) opts="-a --all --json" ;;
	inspect) opts="--json --render --instance" ;;
	logs) opts="-f --follow --instance" ;;
	exec) opts="-t -T -i -e -w -u --instance --" ;;
	run) opts="--rm -t -T -i -e -w -u --" ;;
	cp) opts="-r" ;;
	help) COMPREPLY=($(compgen -W "$verbs" -- "$cur")); return ;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
	elif [ "$verb" = cp ]; then
		COMPREPLY=($(compgen -f -- "$cur") $(compgen -W "$(_hutch_vms | sed 's/$/:/')" -- "$cur"))
	else
		COMPREPLY=($(compgen -W "$(_hutch_vms) micro" -- "$cur"))
	fi
}
complete -F _hutch hutch
