#!/bin/sh
# samples/auction/demo.sh - the auction sample end to end on a fresh SQLite
# log: the scripted demo, then the same binary used as the operations tool
# of its log ("who led auction A at 10:00" with history --as-of, show,
# verify), then the read side: the projections of
# samples/auction/projections/ into a SQLite read model, and the
# leaderboard as it stood at 10:00 by a bounded rebuild. `make demo` runs it
# after the bank's.
#
#   sh samples/auction/demo.sh [PATH/TO/auction]
#   ESFOLD_DEMO_TARGET=postgresql://... sh samples/auction/demo.sh
#
# The read models go to a SQLite file next to the log, or to the target
# ESFOLD_DEMO_TARGET names (`make demo-pg` starts a throwaway PostgreSQL
# server and passes its URL; its database must be new).
#
# The log is a file next to the binary (build/rel/demo/auction.db), removed
# first and kept afterwards so that you can try more commands on it, and
# run the projections of samples/auction/projections/ on it.
# Exits non-zero as soon as a step fails.
set -eu

AUCTION=${1:-build/rel/auction}
DIR=$(dirname "$AUCTION")/demo
DB=$DIR/auction.db
LOG=sqlite:$DB

if [ ! -x "$AUCTION" ]; then
    echo "demo.sh: $AUCTION is not built (run make)" >&2
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

run "$AUCTION" --log "$LOG" demo
run "$AUCTION" --log "$LOG" history auction A --as-of 2026-03-01T10:00:00Z
run "$AUCTION" --log "$LOG" show A
run "$AUCTION" --log "$LOG" verify

# The read side: both projection files, then the leaderboard as of 10:00.
READ=$DIR/auction-read.db
TARGET=${ESFOLD_DEMO_TARGET:-sqlite:$READ}
case $TARGET in
sqlite:*) rm -f "$READ" "$READ-wal" "$READ-shm"
          query() { run sqlite3 -header -column "$READ" "$1"; } ;;
*)        query() { run psql -X -q "$TARGET" -c "$1"; } ;;
esac
for p in leaderboard bidders; do
    run "$AUCTION" --log "$LOG" project run --file "$(dirname "$0")/projections/$p.json" \
        --target "$TARGET" --until-caught-up
done
query 'SELECT auction_id, status, bids, high_bid, leader, winner FROM auction_leaderboard ORDER BY auction_id'
query 'SELECT * FROM auction_bidders ORDER BY won DESC, spent DESC, bidder'
run "$AUCTION" --log "$LOG" project rebuild --file "$(dirname "$0")/projections/leaderboard.json" \
    --target "$TARGET" --as-of 2026-03-01T10:00:00Z --json
query 'SELECT auction_id, status, bids, high_bid, leader FROM auction_leaderboard__asof_20260301t100000z ORDER BY auction_id'
run "$AUCTION" --log "$LOG" status --target "$TARGET"

printf '\nThe auction demo passed. Its log is kept in %s, its read model in %s; try for example:\n' "$DB" "$TARGET"
printf '  %s --log %s open D "Tin robot" Tom 5.00 0.50 2030-01-01T12:00:00Z\n' "$AUCTION" "$LOG"
printf '  %s --log %s bid D Ada 5.00\n' "$AUCTION" "$LOG"
printf '  %s --log %s history auction D\n' "$AUCTION" "$LOG"
