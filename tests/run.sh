#!/bin/sh
# Runs the test programs named on the command line (from BUILD/tests/),
# prints each one's report, and closes with one summary line:
# "tests: N passed, N failed, N skipped". Exits non-zero if any failed.
#
# A program is a cmocka suite ("[  PASSED  ] N tests") or a fuzz corpus
# replay, fuzz/<target> ("fuzz replay: N passed, N failed", one per input).
# A program that exits non-zero without reporting a failure (a crash, a
# valgrind error) counts as one failure.
#
# $ESFOLD_TEST_WRAPPER, when set, is a command line each program runs
# under (`make test VALGRIND=1` sets it to valgrind and its options).
BUILD=$1; shift
passed=0; failed=0; skipped=0; broken=""
if [ -n "${ESFOLD_TEST_WRAPPER:-}" ]; then
    w=${ESFOLD_TEST_WRAPPER%% *}
    if ! command -v "$w" >/dev/null 2>&1; then
        echo "tests: $w is not installed (ESFOLD_TEST_WRAPPER='$ESFOLD_TEST_WRAPPER';" \
             "on Debian: apt-get install $w)"
        echo "tests: 0 passed, 1 failed, 0 skipped"
        exit 1
    fi
fi
for t in "$@"; do
    # The wrapper is split into words on purpose.
    # shellcheck disable=SC2086
    out=$(${ESFOLD_TEST_WRAPPER:-} "$BUILD/tests/$t" 2>&1); rc=$?
    printf '%s\n' "$out"
    p=$(printf '%s\n' "$out" | sed -n -e 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' \
        -e 's/^fuzz replay: \([0-9]*\) passed, [0-9]* failed$/\1/p' | tail -1)
    f=$(printf '%s\n' "$out" | sed -n -e 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' \
        -e 's/^fuzz replay: [0-9]* passed, \([1-9][0-9]*\) failed$/\1/p' | tail -1)
    s=$(printf '%s\n' "$out" | sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' | tail -1)
    passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0})); skipped=$((skipped + ${s:-0}))
    if [ $rc -ne 0 ]; then
        [ -z "$f" ] && failed=$((failed + 1))
        broken="$broken $t"
    fi
done
[ -n "$broken" ] && echo "failing programs:$broken"
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ -z "$broken" ]
