# bash completion for membank(1).
#
# The words come from the command's own help (`membank --help` lists the
# commands, `membank WORDS --help` a command's options), read once per shell
# and kept, so the completion never disagrees with the binary it completes.

_membank_help_cache=()

# The help text of "membank $*", cached by its words.
_membank_help()
{
	local key="$*" i
	for ((i = 0; i < ${#_membank_help_cache[@]}; i += 2)); do
		if [[ ${_membank_help_cache[i]} == "$key" ]]; then
			printf '%s\n' "${_membank_help_cache[i + 1]}"
			return
		fi
	done
	local text
	text=$("${_membank_cmd:-membank}" "$@" --help 2>/dev/null)
	_membank_help_cache+=("$key" "$text")
	printf '%s\n' "$text"
}

_membank()
{
	local cur prev words cword
	if declare -F _init_completion >/dev/null; then
		_init_completion || return
	else
		cur=${COMP_WORDS[COMP_CWORD]}
		prev=${COMP_WORDS[COMP_CWORD - 1]}
		words=("${COMP_WORDS[@]}")
		cword=$COMP_CWORD
	fi
	_membank_cmd=${words[0]}

	case $prev in
	-b | --bank | -o | --out)
		compopt -o filenames 2>/dev/null
		mapfile -t COMPREPLY < <(compgen -d -- "$cur")
		return
		;;
	--durability)
		mapfile -t COMPREPLY < <(compgen -W "full fast" -- "$cur")
		return
		;;
	--journal-creds | --journal-ca | --journal-cert | --journal-key)
		compopt -o filenames 2>/dev/null
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
		return
		;;
	--journal | --journal-timeout | --replicas | -r | --machines | -m)
		# a URL (it may hold credentials: never echoed, never completed)
		# or a number: nothing to offer
		COMPREPLY=()
		return
		;;
	esac

	# The command words typed so far (options and their values skipped).
	local cmd=() i w
	for ((i = 1; i < cword; i++)); do
		w=${words[i]}
		case $w in
		-b | --bank | --durability | -o | --out | -e | --every | --error | -n | --limit | \
			--workers | --seconds | --journal | --journal-creds | --journal-ca | \
			--journal-cert | --journal-key | --journal-timeout | --replicas | -r | \
			--machines | -m) ((i++)) ;;
		-*) ;;
		*) cmd+=("$w") ;;
		esac
	done

	local top
	top=$(_membank_help | sed -n '/^commands:/,/^$/p' | awk '/^  [^ ]/ { print $1, $2 }')
	if [[ $cur == -* ]]; then
		local opts
		# --help and --quiet are every command's (the top-level help lists them)
		opts=$({
			_membank_help "${cmd[@]}" | grep -oE -- '(^|[ ,])--?[a-z][a-z-]*' | tr -d ' ,'
			printf '%s\n' --help --quiet
		} | sort -u)
		mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
		return
	fi
	case ${#cmd[@]} in
	0)
		mapfile -t COMPREPLY < <(compgen -W "$(awk '{ print $1 }' <<<"$top" | sort -u)" -- "$cur")
		;;
	1)
		local subs
		subs=$(awk -v c="${cmd[0]}" '$1 == c && $2 !~ /^[<[-]/ && $2 != "" { print $2 }' <<<"$top")
		if [[ -n $subs ]]; then
			mapfile -t COMPREPLY < <(compgen -W "$subs" -- "$cur")
		elif [[ ${cmd[0]} == restore ]]; then
			compopt -o filenames 2>/dev/null
			mapfile -t COMPREPLY < <(compgen -d -- "$cur")
		fi
		;;
	esac
}
complete -F _membank membank
