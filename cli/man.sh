#!/bin/sh
# man.sh MEMBANK OUT.1 - the membank(1) manual page, generated from the
# command's own --help texts (one source: what `membank ... --help` prints
# is what the manual says).  help2man formats `membank --help` as the
# synopsis and options; every command's --help becomes a subsection of
# COMMANDS; cli/membank.h2m adds the sections --help has no room for.
set -eu
membank=$1
out=$2
here=$(cd "$(dirname "$0")" && pwd)
inc=$(mktemp)
trap 'rm -f "$inc"' EXIT

# Each command's help: its first line (usage: membank WORDS ...) names it.
commands="init page.put page.merge page.get page.rm page.list page.count
sync.record sync.status error.log error.resolve error.stats config.get config.set
snapshot restore compactor journal.tail journal.verify journal.repair stats doctor batch
cluster.status demo"
{
	echo "[COMMANDS]"
	for c in $commands; do
		# shellcheck disable=SC2046 # the words of the command
		text=$("$membank" $(echo "$c" | tr . ' ') --help)
		echo ".SS \"$(echo "$c" | tr . ' ')\""
		echo ".nf"
		printf '%s\n' "$text" | sed -e 's/\\/\\e/g' -e "s/^'/\\\\(aq/" -e 's/^\./\\\&./'
		echo ".fi"
	done
	cat "$here/membank.h2m"
} >"$inc"
help2man --no-info --no-discard-stderr --section=1 \
	--name="a memory bank that many processes on one machine share" \
	--include="$inc" --output="$out" "$membank"
