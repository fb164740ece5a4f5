#!/bin/sh
# run.sh BUILDDIR TEST...: runs each cmocka test binary with TAP output and
# closes with "N passed, N failed"; exits non-zero on any failure.
#
# Counting follows the TAP plan of each group ("1..N"): "ok K" passes, "not
# ok K # SKIP" is skipped, "not ok K" fails, and tests a group planned but
# never reported (its group set-up failed: "not ok 0 ... GROUP SETUP") fail.
# A binary that exits non-zero without reporting a failure counts as one.
B=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
export CALLSTREAM_BIN="$(pwd)/$B/callstream"
export CALLSTREAM_DATA="${CALLSTREAM_DATA:-$here/data}"
export CMOCKA_MESSAGE_OUTPUT=TAP
passed=0
failed=0
skipped=0
for t in "$@"; do
        echo "== $(basename "$t")"
        out=$("$t" 2>&1)
        rc=$?
        printf '%s\n' "$out" | grep -v '^ok '
        set -- $(printf '%s\n' "$out" | awk '
                function close_group() {
                        if (plan > seen) f += plan - seen
                        plan = 0; seen = 0
                }
                /^1\.\.[0-9]+/ { close_group(); plan = substr($1, 4) + 0; next }
                /^ok [1-9][0-9]*/ { p++; seen++; next }
                /^not ok [1-9][0-9]* # SKIP/ { s++; seen++; next }
                /^not ok [1-9][0-9]*/ { f++; seen++; next }
                END { close_group(); print p + 0, f + 0, s + 0 }')
        p=$1 f=$2 s=$3
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
                echo "not ok - $(basename "$t") exited with status $rc"
                f=1
        fi
        echo "   $p passed, $f failed$([ "$s" -eq 0 ] || echo ", $s skipped")"
        passed=$((passed + p))
        failed=$((failed + f))
        skipped=$((skipped + s))
done
[ "$skipped" -eq 0 ] || echo "$skipped skipped (see '# SKIP' above)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
