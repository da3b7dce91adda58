#!/bin/sh
# exports.sh STATIC.a SHARED.so - each library exports the public API only:
# every defined global symbol starts with mb_.  Prints the offenders.
set -eu
status=0
for lib in "$1" "$2"; do
	case "$lib" in
	*.so*) syms=$(nm -D --defined-only "$lib") ;;
	*) syms=$(nm -g --defined-only "$lib") ;;
	esac
	bad=$(printf '%s\n' "$syms" | awk 'NF == 3 && $3 !~ /^mb_/ { print $3 }')
	n=$(printf '%s\n' "$syms" | awk 'NF == 3 && $3 ~ /^mb_/' | wc -l)
	if [ -n "$bad" ]; then
		echo "$lib exports names outside the API: $(echo $bad | head -c 400)"
		status=1
	else
		echo "$lib: $n symbols, all mb_"
	fi
	[ "$n" -ge 29 ] || { echo "$lib: only $n mb_ symbols"; status=1; }
done
exit $status
