#!/bin/sh
# The multi-threaded tests under ThreadSanitizer: store-procs (threads
# sharing one handle, fork while another thread opens) and journal-gsync
# (group commit across threads and processes).  Exit non-zero on any
# ThreadSanitizer report or failed test.
#
#   tests/hardening/run-tsan.sh [BUILD_DIR]      (default: build-tsan)
#
# Configures BUILD_DIR with -Db_sanitize=thread when it does not exist.
# liblmdb is not instrumented: tests/hardening/tsan.supp may list liblmdb
# frames only (see there).  About 30 s to run on 2 cores, plus the build.
set -eu
cd "$(dirname "$0")/../.."
build=${1:-build-tsan}
if [ ! -f "$build/build.ninja" ]; then
	meson setup "$build" -Db_sanitize=thread -Db_lundef=false -Dbench=disabled >/dev/null
fi
ninja -C "$build" tests/store/store-procs tests/journal/journal-gsync >/dev/null
supp="$PWD/tests/hardening/tsan.supp"
status=0
for t in tests/store/store-procs tests/journal/journal-gsync; do
	log="$build/$(basename "$t").tsan.log"
	echo "== $t under ThreadSanitizer"
	rc=0
	CMOCKA_MESSAGE_OUTPUT=stdout \
	TSAN_OPTIONS="halt_on_error=0 second_deadlock_stack=1 suppressions=$supp" \
		timeout 600 "$build/$t" >"$log" 2>&1 || rc=$?
	reports=$(grep -c "WARNING: ThreadSanitizer" "$log" || true)
	grep -E "^\[  (PASSED|FAILED)" "$log" || true
	if [ "$rc" -ne 0 ] || [ "$reports" -ne 0 ]; then
		status=1
		echo "$t: exit $rc, $reports ThreadSanitizer report(s); first:"
		sed -n '/WARNING: ThreadSanitizer/,/^SUMMARY/p' "$log" | head -n 40
	fi
done
exit $status
