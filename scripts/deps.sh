#!/bin/sh
# Installs the Debian packages esfold needs to build, test and run its demo,
# when any is missing. Called by `make` before building; safe to run again.
#   scripts/deps.sh            build + test + demo dependencies
#   scripts/deps.sh fuzz       clang and its runtimes, for `make fuzz`
set -eu

PKGS="build-essential pkg-config libjansson-dev libsqlite3-dev sqlite3 \
librdkafka-dev libpq-dev libcmocka-dev postgresql kcat valgrind"
[ "${1:-}" = fuzz ] && PKGS="clang-14 libclang-rt-14-dev"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

echo "esfold: installing missing Debian packages:$missing" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
        echo "esfold: need root (or sudo) to apt-get install:$missing" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
