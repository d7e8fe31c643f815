#!/bin/sh
# bench/async/run.sh [BUILD] [N] [ROUNDS]: time to establish N concurrent
# connections in one event loop, tlsshim vs the runtime's own TLS (python
# asyncio + ssl, node net/tls), against one local TLS echo server with no
# handshake delay. Prints the median of ROUNDS per variant and the ratio
# tlsshim / native. Not a test: numbers depend on the machine.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${1:-$top/build}
n=${2:-200}
rounds=${3:-5}
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT INT TERM

sh "$top/tests/helpers/gencerts.sh" "$tmp/certs" >/dev/null
python3 "$top/tests/async/delayserver.py" --delay-ms 0 --max-seconds 600 \
	--cert "$tmp/certs/good.pem" --key "$tmp/certs/good.key" \
	--port-file "$tmp/port" 2>/dev/null &
pid=$!
i=0
while [ ! -s "$tmp/port" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
port=$(cat "$tmp/port")
printf '[bench]\nmatch = 127.0.0.1:%s\nca-file = %s\n' "$port" \
	"$tmp/certs/ca.pem" >"$tmp/p.conf"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

run() { # label cmd...
	label=$1
	shift
	r=0
	: >"$tmp/t"
	while [ $r -lt "$rounds" ]; do
		timeout 120 "$@" >>"$tmp/t"
		r=$((r + 1))
	done
	median <"$tmp/t"
}

ca=$tmp/certs/ca.pem
shim="$build/src/tlsshim -p $tmp/p.conf --"
echo "N=$n concurrent connections, median of $rounds rounds (seconds)"
for rt in python node; do
	case $rt in
	python) cmd="python3 $here/async_connect.py" ;;
	node) cmd="node $here/async_connect.js" ;;
	esac
	native=$(run native $cmd tls "$port" "$n" "$ca")
	shimmed=$(run tlsshim $shim $cmd plain "$port" "$n" "$ca")
	ratio=$(awk -v a="$shimmed" -v b="$native" 'BEGIN {printf "%.2f", a / b}')
	printf '%-7s native TLS %s  tlsshim %s  ratio tlsshim/native %s\n' \
		"$rt" "$native" "$shimmed" "$ratio"
done
