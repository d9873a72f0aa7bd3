#!/bin/sh
# samples/bank/demo.sh - the bank sample end to end on a fresh SQLite log:
# the scripted demo, then the same binary used as the operations tool of
# its log (history, show, verify). `make demo` runs it.
#
#   sh samples/bank/demo.sh [PATH/TO/bank]
#
# The log is a file next to the binary (build/rel/demo/bank.db), removed
# first and kept afterwards so that you can try more commands on it; the
# program's snapshots are in the same file.
# Exits non-zero as soon as a step fails.
set -eu

BANK=${1:-build/rel/bank}
DIR=$(dirname "$BANK")/demo
DB=$DIR/bank.db
LOG=sqlite:$DB

if [ ! -x "$BANK" ]; then
    echo "demo.sh: $BANK is not built (run make)" >&2
    exit 1
fi
mkdir -p "$DIR"
rm -f "$DB" "$DB-wal" "$DB-shm" "$DB-journal"

run() {
    printf '\n$ %s\n' "$*"
    "$@" || {
        status=$?
        echo "demo.sh: step failed with status $status: $*" >&2
        exit 1
    }
}

run "$BANK" --log "$LOG" demo
run "$BANK" --log "$LOG" history account acct-1
run "$BANK" --log "$LOG" show acct-2
run "$BANK" --log "$LOG" verify
# The read model of the program's C keyed fold, in bank.projections.db.
rm -f "$DIR/bank.projections.db" "$DIR/bank.projections.db-wal" \
    "$DIR/bank.projections.db-shm"
run "$BANK" --log "$LOG" project run accounts --until-caught-up
if command -v sqlite3 >/dev/null 2>&1; then
    run sqlite3 "$DIR/bank.projections.db" \
        "SELECT key, doc, version FROM account_summary ORDER BY key"
fi

printf '\nThe demo passed. Its log is kept in %s; try for example:\n' "$DB"
printf '  %s --log %s deposit acct-2 10.00\n' "$BANK" "$LOG"
printf '  %s --log %s history account acct-2\n' "$BANK" "$LOG"
printf '  %s --log %s snapshot list account acct-3\n' "$BANK" "$LOG"
