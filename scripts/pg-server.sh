#!/bin/sh
# A throwaway PostgreSQL server for the demos, like the one the tests start
# (tests/pg_harness.c): Debian's postgresql package, initdb into DIR, a
# loopback port, trust authentication, no fsync. Nothing outside DIR is
# touched, and `stop` removes DIR.
#
#   scripts/pg-server.sh start DIR    prints the server's libpq URL
#   scripts/pg-server.sh stop DIR
#
# As root the server runs as the postgres user (it refuses to run as root).
set -eu

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }

bin=${ESFOLD_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
[ -x "$bin/initdb" ] || { echo "$0: no PostgreSQL server binaries (apt-get install postgresql)" >&2; exit 1; }

as_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case $cmd in
start)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
    as_pg "$bin/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --no-sync \
        >"$dir/initdb.log" 2>&1 || { echo "$0: initdb failed: see $dir/initdb.log" >&2; exit 1; }
    # A port nobody listens on: try a few from a pseudo-random start.
    port=$((20000 + $$ % 20000)); tries=0
    while :; do
        if as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o \
            "-p $port -k '$dir' -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off" \
            start >"$dir/pg_ctl.log" 2>&1; then
            break
        fi
        tries=$((tries + 1))
        [ $tries -lt 10 ] || { echo "$0: the server did not start: see $dir/server.log" >&2; exit 1; }
        port=$((port + 1))
    done
    echo "postgresql://postgres@127.0.0.1:$port/postgres"
    ;;
stop)
    [ -d "$dir/data" ] && as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
*)
    echo "usage: $0 start|stop DIR" >&2; exit 2
    ;;
esac
