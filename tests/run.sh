#!/bin/sh
# run.sh BUILDDIR TEST...: runs each cmocka test binary with TAP output and
# closes with "N passed, N failed"; exits non-zero on any failure.
B=$1
shift
export CALLSTREAM_BIN="$(pwd)/$B/callstream"
export CALLSTREAM_DATA="$(cd "$(dirname "$0")/../.." && pwd)/shared/data"
export CMOCKA_MESSAGE_OUTPUT=TAP
passed=0
failed=0
for t in "$@"; do
        echo "== $(basename "$t")"
        out=$("$t" 2>&1)
        rc=$?
        printf '%s\n' "$out" | grep -v '^ok ' 
        p=$(printf '%s\n' "$out" | grep -c '^ok ')
        f=$(printf '%s\n' "$out" | grep -c '^not ok ')
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
                echo "not ok - $(basename "$t") exited with status $rc"
                f=1
        fi
        echo "   $p passed, $f failed"
        passed=$((passed + p))
        failed=$((failed + f))
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
