#!/bin/sh
# tests/symbols.sh LIB.so - fails when the shared library exports anything
# but the public API: an internal es__ name, or a name without the es_
# prefix (esfold.map is what keeps them local). Prints the count on
# success, the offending names on failure.
set -eu
so=$1
syms=$(nm -D --defined-only "$so" | awk '{ print $3 }' | sed 's/@.*//' | sort -u)
[ -n "$syms" ] || { echo "symbols: $so exports nothing (is nm broken?)" >&2; exit 1; }
bad=$(printf '%s\n' "$syms" | grep -v '^es_' || true)
internal=$(printf '%s\n' "$syms" | grep '^es__' || true)
bad=$(printf '%s\n%s\n' "$bad" "$internal" | sed '/^$/d')
if [ -n "$bad" ]; then
    echo "symbols: $so exports $(printf '%s\n' "$bad" | wc -l) names outside the public API:" >&2
    printf '  %s\n' $bad >&2
    exit 1
fi
# The API users call must be there: a map that hid everything would pass
# the checks above.
for s in es_log_open es_repo_execute es_cli_main es_version es_strerror; do
    printf '%s\n' "$syms" | grep -qx "$s" || { echo "symbols: $so does not export $s" >&2; exit 1; }
done
echo "symbols: $so exports $(printf '%s\n' "$syms" | wc -l) names, all es_, none es__"
