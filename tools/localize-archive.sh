#!/bin/sh
# localize-archive.sh OUT.a IN.a... - the installed static library exports only
# the public API.
#
# A static archive has no export list: every global symbol of every object
# in it is visible to the program that links it, so internal names (kv_open,
# buf_add, json_parse...) would collide with the program's own.  The objects
# are compiled with hidden visibility and only MB_API functions are marked
# default, so: link them into one relocatable object (ld -r resolves the
# internal references between them), make every hidden symbol local
# (objcopy --localize-hidden), and archive that one object.
set -eu
abs() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
out=$(abs "$1")
shift
ins=""
for a in "$@"; do ins="$ins $(abs "$a")"; done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
# shellcheck disable=SC2086 # the paths are ours, without spaces
${LD:-ld} -r -o membank.o --whole-archive $ins
${OBJCOPY:-objcopy} --localize-hidden membank.o
rm -f "$out"
${AR:-ar} rcs "$out" membank.o
