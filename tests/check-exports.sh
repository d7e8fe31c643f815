#!/bin/sh
# The preload exports exactly the names in its version script: a missing
# name is a hook that never runs, an extra one a symbol we leak into every
# program.
set -eu
lib=$1 sym=$2
want=$(sed -n 's/^[[:space:]]*\([A-Za-z_][A-Za-z0-9_]*\);.*/\1/p' "$sym" |
	grep -v '^local$' | sort)
have=$(nm -D --defined-only "$lib" | awk '{print $3}' | sed 's/@.*//' | sort)
if [ "$want" != "$have" ]; then
	echo "exported symbols differ from $sym:" >&2
	diff -u "$(printf '%s\n' "$want" > "${TMPDIR:-/tmp}/want.$$"; echo "${TMPDIR:-/tmp}/want.$$")" \
		"$(printf '%s\n' "$have" > "${TMPDIR:-/tmp}/have.$$"; echo "${TMPDIR:-/tmp}/have.$$")" >&2 || true
	rm -f "${TMPDIR:-/tmp}/want.$$" "${TMPDIR:-/tmp}/have.$$"
	exit 1
fi
# The preload must not pull GnuTLS into every process.
if readelf -d "$lib" | grep -q 'NEEDED.*gnutls'; then
	echo "$lib links GnuTLS" >&2
	exit 1
fi
echo "1 passed, 0 failed"
