#!/bin/sh
# samples/minimal/demo.sh - the minimal sample on a fresh SQLite log: its
# one command, a refusal, then the same binary as its own operations tool.
# `make demo` runs it.  sh samples/minimal/demo.sh [PATH/TO/minimal]
set -eu
MINIMAL=${1:-build/rel/minimal}
DIR=$(dirname "$MINIMAL")/demo
DB=$DIR/minimal.db
mkdir -p "$DIR"
rm -f "$DB" "$DB-wal" "$DB-shm" "$DB-journal"
run() {
    printf '\n$ %s\n' "$*"
    "$@"
}
run "$MINIMAL" --log "sqlite:$DB" add c1 5
run "$MINIMAL" --log "sqlite:$DB" add c1 2
if run "$MINIMAL" --log "sqlite:$DB" add c1 -3; then
    echo "demo.sh: a negative add was not refused" >&2; exit 1
fi
run "$MINIMAL" --log "sqlite:$DB" history counter c1
run "$MINIMAL" --log "sqlite:$DB" verify
printf '\nThe minimal demo passed; its log is %s.\n' "$DB"
