#!/bin/sh
# Run every libFuzzer target found in a build directory for SECONDS each.
# Builds nothing: configure and build first, e.g.
#   CC=clang meson setup build-fuzz -Dfuzz=true -Db_lundef=false
#   ninja -C build-fuzz tests/journal/fuzz-journal
#   tests/fuzz/run.sh 60 build-fuzz
# A target "fuzz-NAME" starts from the seeds in tests/fuzz/corpus/NAME/
# (copied to a scratch corpus, so the committed seeds stay as they are).
# Exit status: non-zero when a target failed (libFuzzer leaves the
# reproducer in the current directory as crash-*, leak-* or timeout-*).
set -eu
usage() { echo "usage: $0 SECONDS [BUILD_DIR]" >&2; exit 2; }
[ $# -ge 1 ] || usage
secs=$1
build=${2:-build-fuzz}
case $secs in ''|*[!0-9]*) usage ;; esac
here=$(cd "$(dirname "$0")" && pwd)
[ -d "$build" ] || { echo "$0: no build directory $build" >&2; exit 2; }
targets=$(find "$build" -type f -name 'fuzz-*' -perm -u+x | sort)
[ -n "$targets" ] || { echo "$0: no fuzz-* targets in $build (configure with -Dfuzz=true)" >&2; exit 2; }
status=0
for t in $targets; do
  name=$(basename "$t"); name=${name#fuzz-}
  scratch=$(mktemp -d "${TMPDIR:-/tmp}/fuzz-$name-XXXXXX")
  if [ -d "$here/corpus/$name" ]; then cp "$here/corpus/$name"/* "$scratch"/; fi
  echo "== $t for ${secs}s (corpus $scratch)"
  if "$t" -max_total_time="$secs" -max_len=65536 -timeout=10 "$scratch" >"$scratch.log" 2>&1; then
    tail -n 1 "$scratch.log"
  else
    status=1
    tail -n 40 "$scratch.log"
  fi
  rm -f "$scratch.log"
  rm -rf "$scratch"
done
exit $status
