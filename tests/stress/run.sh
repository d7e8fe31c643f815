#!/bin/sh
# run.sh ECHO_SERVER PRELOAD PROGRAM [ARGS...]: runs one stress PROGRAM
# under the preload against a fresh GnuTLS echo server on a free loopback
# port, with a policy whose one rule matches that port ($STRESS_PORT).
#   $TLSSHIM_SAN_PRELOAD  sanitizer runtime(s), kept first in LD_PRELOAD
#   $TLSSHIM_MEMCHECK     a wrapper (valgrind ...) for PROGRAM
# Bounded: the server exits by itself, the program has a watchdog, and
# timeout(1) is the last resort.
set -eu
server=$1 lib=$2
shift 2
src=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/tlsshim-stress.XXXXXX")
spid=
cleanup() {
	[ -n "$spid" ] && kill "$spid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT INT TERM
# echo_server logs its KeyUpdates here (stress_keyupdate checks them).
ECHO_KEYUPDATE_LOG=$work/keyupdates
export ECHO_KEYUPDATE_LOG
sh "$src/tests/helpers/gencerts.sh" "$work/certs"
"$server" "$work/certs/good.pem" "$work/certs/good.key" "$work/port" 600 &
spid=$!
i=0
while [ ! -s "$work/port" ]; do
	i=$((i + 1))
	[ $i -le 100 ] || { echo "echo server did not start" >&2; exit 1; }
	sleep 0.1
done
STRESS_PORT=$(cat "$work/port")
export STRESS_PORT
cat >"$work/p.conf" <<-EOF2
	handshake-timeout = 20
	[echo]
	match = 127.0.0.1:$STRESS_PORT
	ca-file = $work/certs/ca.pem
EOF2
export TLSSHIM_POLICY="$work/p.conf"
export LD_PRELOAD="${TLSSHIM_SAN_PRELOAD:+$TLSSHIM_SAN_PRELOAD }$lib"
# shellcheck disable=SC2086
timeout -k 5 "${STRESS_TIMEOUT_OUTER:-280}" ${TLSSHIM_MEMCHECK:-} "$@"
