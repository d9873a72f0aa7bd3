#!/bin/sh
# Runs the test programs named on the command line (from BUILD/tests/),
# prints each one's cmocka report, and closes with one summary line:
# "tests: N passed, N failed, N skipped". Exits non-zero if any failed.
BUILD=$1; shift
passed=0; failed=0; skipped=0; broken=""
for t in "$@"; do
    out=$("$BUILD/tests/$t" 2>&1); rc=$?
    printf '%s\n' "$out"
    p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -1)
    f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -1)
    s=$(printf '%s\n' "$out" | sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' | tail -1)
    passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0})); skipped=$((skipped + ${s:-0}))
    if [ $rc -ne 0 ] && [ -z "$f" ]; then
        failed=$((failed + 1)); broken="$broken $t"
    fi
    [ $rc -ne 0 ] && broken="$broken $t"
done
[ -n "$broken" ] && echo "failing programs:$broken"
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ -z "$broken" ]
