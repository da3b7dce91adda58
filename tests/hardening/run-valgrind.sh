#!/bin/sh
# Run a representative set of membank commands under valgrind memcheck.
# Exit status non-zero on any memcheck error or definite leak.
#
#   tests/hardening/run-valgrind.sh [BUILD_DIR]     (default: build)
#
# Builds nothing: BUILD_DIR/cli/membank must exist (a normal, unsanitized
# build: valgrind and ASan do not mix).  The bank lives in a temp dir.
set -eu
build=${1:-build}
membank="$build/cli/membank"
[ -x "$membank" ] || { echo "$0: no $membank (build first)" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "$0: valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/membank-valgrind-XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
bank="$tmp/bank"
snap="$tmp/snap"
mkdir "$snap"
runs=0
failed=0

# vg EXPECTED_STATUS ARGS...: one membank command under memcheck.
vg() {
	want=$1
	shift
	runs=$((runs + 1))
	set +e
	valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
		--show-leak-kinds=definite --track-fds=no \
		"$membank" -b "$bank" "$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	set -e
	if [ "$rc" -eq 99 ] || [ "$rc" -ne "$want" ]; then
		failed=$((failed + 1))
		echo "FAIL ($rc, want $want): membank $*"
		sed 's/^/    /' "$tmp/err" | head -n 60
	fi
}

vg 0 init
vg 0 page put p1 '{"title":"One","tags":["a","b"],"n":1.5}'
vg 0 page put p2 '{"title":"Two"}'
vg 0 page merge p1 '{"tags":null,"done":true}'
vg 0 page get p1
vg 0 page list
vg 0 page count
vg 0 page rm p2
vg 1 page get p2
vg 0 sync record success
vg 0 sync record failed --error "timeout after 30s"
vg 0 sync status
vg 0 error log NetworkError "connection reset"
vg 0 error resolve NetworkError "retry with backoff"
vg 0 error stats
vg 0 config set '{"cache_settings":{"max_entries":50},"logging_settings":{"log_level":"DEBUG"}}'
vg 0 config get
vg 0 config get cache_settings.max_entries
vg 0 snapshot
vg 0 snapshot --out "$snap"
vg 0 journal verify
vg 0 journal tail -n 5
vg 0 stats
# bad input must fail cleanly too
vg 3 page put p3 '{"unterminated":'
vg 3 config set '{"cache_settings":{"max_entries":-1}}'
# restore into a fresh bank from the snapshot
bank="$tmp/restored"
vg 0 restore "$snap"
vg 0 page get p1
vg 0 journal repair

echo "valgrind: $runs membank commands under memcheck, $failed failed"
[ "$failed" -eq 0 ]
