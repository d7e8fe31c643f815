#!/bin/sh
# The demonstration: a TLS-only server with a throwaway CA, and plain
# `curl http://` made a verified TLS client by tlsshim — then refused when
# the server's certificate names another host.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/../build}" && pwd)
tlsshim=$build/src/tlsshim
work=$(mktemp -d)
pids=
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

serve() { # name cert: a TLS-only HTTP server on a free loopback port
	python3 "$here/helpers/tlsserver.py" --mode http \
		--cert "$work/certs/$2.pem" --key "$work/certs/$2.key" \
		--port-file "$work/$1.port" --max-seconds 60 2>/dev/null &
	pids="$pids $!"
	i=0
	while [ ! -s "$work/$1.port" ] && [ $i -lt 100 ]; do
		sleep 0.1; i=$((i + 1))
	done
}

step() { printf '\n== %s\n' "$*"; }

step "a throwaway CA and server certificates (certtool)"
sh "$here/helpers/gencerts.sh" "$work/certs"
ls "$work/certs" | tr '\n' ' '; echo

serve good good
serve wrong wrongname
good=$(cat "$work/good.port")
wrong=$(cat "$work/wrong.port")
step "TLS-only HTTP servers: 127.0.0.1:$good (certificate for localhost), 127.0.0.1:$wrong (for other.invalid)"

cat >"$work/demo.conf" <<EOF
# Upgrade plain HTTP to both servers to verified TLS.
[demo]
match = 127.0.0.1:$good, 127.0.0.1:$wrong
sni = localhost
ca-file = $work/certs/ca.pem
EOF
step "the policy (demo.conf)"
cat "$work/demo.conf"

step "plain curl without tlsshim: the TLS-only server cannot answer it"
echo "\$ curl http://127.0.0.1:$good/"
curl -sS --max-time 5 "http://127.0.0.1:$good/" || true

step "the same unmodified curl under tlsshim: verified TLS"
echo "\$ tlsshim -v -p demo.conf -- curl http://127.0.0.1:$good/"
"$tlsshim" -v -p "$work/demo.conf" -- curl -sS --max-time 10 \
	"http://127.0.0.1:$good/"

step "a server whose certificate names another host is refused, with the reason"
echo "\$ tlsshim -p demo.conf -- curl http://127.0.0.1:$wrong/"
if "$tlsshim" -p "$work/demo.conf" -- curl -sS --max-time 10 \
	"http://127.0.0.1:$wrong/"; then
	echo "demo: FAILED: the wrong-name server was not refused" >&2
	exit 1
fi
step "done: the unmodified client got its answer only over verified TLS"
