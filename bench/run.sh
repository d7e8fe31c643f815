#!/bin/sh
# Build and run the tlsshim benchmarks (see docs/performance.md).
#   bench/run.sh [--quick] [--repeat N] [--only bulk,connect,...] [--out FILE]
#   bench/run.sh --only server     server mode (issue 16) alone
# BUILD_DIR (default: build) is the meson build directory; it is set up
# when missing. Needs: python3, certtool (gnutls-bin); optional: stunnel4,
# socat, hyperfine, valgrind (variants whose tool is missing are skipped
# and said so in the table).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$here/build}
[ -d "$build" ] || meson setup "$build" "$here" >/dev/null
meson compile -C "$build" >/dev/null
exec python3 "$here/bench/bench.py" --build "$build" "$@"
