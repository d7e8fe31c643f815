#!/usr/bin/env bats
# Issues 3 and 4: real programs, unmodified, speak plain TCP/HTTP to a
# loopback port nothing listens on; the policy maps it (tls-port) to a TLS
# server, so every byte that arrives went through verified TLS.  Each
# moves a payload checked end to end by sha256.  Event loops (node net,
# python asyncio) open 200 connections at once to a server that delays
# each handshake 50-200 ms while a 5 ms timer ticks in the same loop.

load io-helpers/io

setup_file() {
	io_setup_env
	sh "$BATS_TEST_DIRNAME/helpers/gencerts.sh" "$IO_DIR/certs"
	local c="$IO_DIR/certs"
	mkdir -p "$IO_DIR/www"
	head -c 10485760 /dev/urandom >"$IO_DIR/www/payload"
	for i in 1 2 3 4 5 6 7 8; do
		head -c 1000000 /dev/urandom >"$IO_DIR/www/part$i"
	done
	# what the echo server returns for a file: the file, then "EOF <n>\n"
	{ cat "$IO_DIR/www/payload"; printf 'EOF %d\n' 10485760; } >"$IO_DIR/echoed"
	export ECHOED_SHA=$(sha256sum <"$IO_DIR/echoed" | cut -d' ' -f1)
	export PAYLOAD_SHA=$(sha256sum <"$IO_DIR/www/payload" | cut -d' ' -f1)
	export TLS_ECHO=$(io_server p-echo --cert "$c/good.pem" --key "$c/good.key")
	export TLS_WEB=$(io_server p-web --mode http --root "$IO_DIR/www" --cert "$c/good.pem" --key "$c/good.key")
	export TLS_SLOW=$(io_server p-slow --delay 50-200 --cert "$c/good.pem" --key "$c/good.key")
	export PLAIN_ECHO=$(io_server p-plain-echo --plain)
	export PLAIN_WEB=$(io_server p-plain-web --plain --mode http --root "$IO_DIR/www")
	# the ports the programs are given: nothing listens there
	export ECHO=$(free_port) WEB=$(free_port) SLOW=$(free_port) REDIS=$(free_port)
	export TLS_REDIS=$(free_port)
	if command -v redis-server >/dev/null; then
		start_redis "$c"
	fi
	cat >"$IO_DIR/policy.conf" <<EOP
log-level = warn
handshake-timeout = 10

[echo]
match = 127.0.0.1:$ECHO
tls-port = $TLS_ECHO
ca-file = $c/ca.pem

[web]
match = 127.0.0.1:$WEB
tls-port = $TLS_WEB
ca-file = $c/ca.pem

[slow]
match = 127.0.0.1:$SLOW
tls-port = $TLS_SLOW
ca-file = $c/ca.pem

[redis]
match = 127.0.0.1:$REDIS
tls-port = $TLS_REDIS
sni = localhost
ca-file = $c/ca.pem
EOP
	"$TLSSHIM" --check "$IO_DIR/policy.conf"
}

# A TLS-only redis-server (no plaintext port) on $TLS_REDIS.
start_redis() {
	local c=$1
	start_bg redis-server --port 0 --tls-port "$TLS_REDIS" --bind 127.0.0.1 \
		--tls-cert-file "$c/good.pem" --tls-key-file "$c/good.key" \
		--tls-ca-cert-file "$c/ca.pem" --tls-auth-clients no \
		--save '' --appendonly no --dir "$IO_DIR" \
		>"$IO_DIR/redis.log" 2>&1 3>&-
	local i
	for i in $(seq 100); do
		redis-cli --tls --cacert "$c/ca.pem" -h 127.0.0.1 -p "$TLS_REDIS" PING 2>/dev/null |
			grep -q PONG && return 0
		sleep 0.1
	done
	cat "$IO_DIR/redis.log" >&2
	return 1
}

teardown_file() {
	stop_servers
}

# node net: send a file, end(), print the sha256 of everything read to EOF.
NODE_ECHO='
	const net = require("net"), fs = require("fs"), crypto = require("crypto");
	const h = crypto.createHash("sha256");
	const s = net.connect({host: "127.0.0.1", port: +process.argv[1]}, () => {
		s.end(fs.readFileSync(process.argv[2]));
	});
	s.on("data", (d) => h.update(d));
	s.on("end", () => console.log(h.digest("hex")));
	s.on("error", (e) => { console.log(e.message); process.exit(1); });
'

shim() {
	run_io "${SHIM_T:-120}" "$TLSSHIM" -p "$IO_DIR/policy.conf" -- "$@"
}

sha() {
	sha256sum <"$1" | cut -d' ' -f1
}

# The helper clients themselves are right: plain servers, no preload.
@test "validation: helper clients and event-loop scripts on plain TCP, no preload" {
	require_tool node
	run_io 60 "$PYTHON" "$IO_HELPERS/pyclients.py" socket "$PLAIN_ECHO" "$IO_DIR/www/payload"
	[ "${lines[-1]}" = "$ECHOED_SHA" ]
	run_io 60 "$PYTHON" "$IO_HELPERS/pyclients.py" asyncio "$PLAIN_ECHO" "$IO_DIR/www/payload"
	[ "${lines[-1]}" = "$ECHOED_SHA" ]
	run_io 60 "$PYTHON" "$IO_HELPERS/pyclients.py" http "$PLAIN_WEB" /payload
	[ "${lines[-1]}" = "$PAYLOAD_SHA" ]
	run_io 60 node -e "$NODE_ECHO" "$PLAIN_ECHO" "$IO_DIR/www/payload"
	[ "${lines[-1]}" = "$ECHOED_SHA" ]
	# plain TCP connects complete at once: no tick count to expect here
	run_io 60 node "$IO_HELPERS/evloop.js" "$PLAIN_ECHO" 200 4096 0
	[ "$status" -eq 0 ]
	run_io 60 "$PYTHON" "$IO_HELPERS/evloop.py" "$PLAIN_ECHO" 200 4096 0
	[ "$status" -eq 0 ]
}

@test "curl: http:// URL fetched over TLS (10 MB, sha256)" {
	require_tool curl
	shim curl -sS -o "$BATS_TEST_TMPDIR/out" "http://127.0.0.1:$WEB/payload"
	[ "$status" -eq 0 ]
	[ "$(sha "$BATS_TEST_TMPDIR/out")" = "$PAYLOAD_SHA" ]
}

@test "wget: http:// URL fetched over TLS (10 MB, sha256)" {
	require_tool wget
	shim wget -q -O "$BATS_TEST_TMPDIR/out" "http://127.0.0.1:$WEB/payload"
	[ "$status" -eq 0 ]
	[ "$(sha "$BATS_TEST_TMPDIR/out")" = "$PAYLOAD_SHA" ]
}

@test "python3 socket: 10 MB echoed, half-close, read to EOF" {
	require_tool "$PYTHON"
	shim "$PYTHON" "$IO_HELPERS/pyclients.py" socket "$ECHO" "$IO_DIR/www/payload"
	[ "$status" -eq 0 ]
	[ "${lines[-1]}" = "$ECHOED_SHA" ]
}

@test "python3 http.client: GET over TLS (10 MB, sha256)" {
	require_tool "$PYTHON"
	shim "$PYTHON" "$IO_HELPERS/pyclients.py" http "$WEB" /payload
	[ "$status" -eq 0 ]
	[ "${lines[-1]}" = "$PAYLOAD_SHA" ]
}

@test "python3 asyncio streams: 10 MB echoed, write_eof, read to EOF" {
	require_tool "$PYTHON"
	shim "$PYTHON" "$IO_HELPERS/pyclients.py" asyncio "$ECHO" "$IO_DIR/www/payload"
	[ "$status" -eq 0 ]
	[ "${lines[-1]}" = "$ECHOED_SHA" ]
}

@test "node net: 10 MB echoed, end(), read to EOF" {
	require_tool node
	shim node -e "$NODE_ECHO" "$ECHO" "$IO_DIR/www/payload"
	[ "$status" -eq 0 ]
	[ "${lines[-1]}" = "$ECHOED_SHA" ]
}

@test "nc (OpenBSD): 10 MB echoed, -N half-close" {
	require_tool nc
	nc -h 2>&1 | grep -q -- '-N' || { echo "nc is not OpenBSD netcat"; false; }
	run_io 120 sh -c '"$TLSSHIM" -p "$IO_DIR/policy.conf" -- nc -N 127.0.0.1 "$ECHO" <"$IO_DIR/www/payload" >"$BATS_TEST_TMPDIR/out"'
	[ "$status" -eq 0 ]
	[ "$(sha "$BATS_TEST_TMPDIR/out")" = "$ECHOED_SHA" ]
}

@test "ncat: 10 MB echoed" {
	require_tool ncat
	run_io 120 sh -c '"$TLSSHIM" -p "$IO_DIR/policy.conf" -- ncat 127.0.0.1 "$ECHO" <"$IO_DIR/www/payload" >"$BATS_TEST_TMPDIR/out"'
	[ "$status" -eq 0 ]
	[ "$(sha "$BATS_TEST_TMPDIR/out")" = "$ECHOED_SHA" ]
}

@test "socat: 10 MB echoed" {
	require_tool socat
	run_io 120 sh -c '"$TLSSHIM" -p "$IO_DIR/policy.conf" -- socat -t 30 - "TCP:127.0.0.1:$ECHO" <"$IO_DIR/www/payload" >"$BATS_TEST_TMPDIR/out"'
	[ "$status" -eq 0 ]
	[ "$(sha "$BATS_TEST_TMPDIR/out")" = "$ECHOED_SHA" ]
}

@test "redis-cli against a TLS-only redis-server: 1 MB value SET and GET" {
	require_tool redis-server
	require_tool redis-cli
	head -c 750000 "$IO_DIR/www/part1" | base64 -w0 >"$BATS_TEST_TMPDIR/val"
	run_io 60 sh -c '"$TLSSHIM" -p "$IO_DIR/policy.conf" -- redis-cli -h 127.0.0.1 -p "$REDIS" -x SET k <"$BATS_TEST_TMPDIR/val"'
	[ "$status" -eq 0 ]
	[ "$output" = "OK" ]
	run_io 60 sh -c '"$TLSSHIM" -p "$IO_DIR/policy.conf" -- redis-cli --raw -h 127.0.0.1 -p "$REDIS" GET k >"$BATS_TEST_TMPDIR/got"'
	[ "$status" -eq 0 ]
	[ "$(head -c 1000000 "$BATS_TEST_TMPDIR/got" | sha256sum)" = "$(sha256sum <"$BATS_TEST_TMPDIR/val")" ]
}

# Issue 4. The timer ticks every 5 ms; the shortest handshake delay is
# 50 ms = 10 periods: at least 2 ticks must fire while the 200
# connections are being established (a blocking connect stalls the loop
# for all of them: 0 ticks).
@test "node net event loop: 200 concurrent upgraded connections, timer keeps ticking" {
	require_tool node
	SHIM_T=60 shim node "$IO_HELPERS/evloop.js" "$SLOW" 200 4096 2
	[ "$status" -eq 0 ]
}

@test "python asyncio event loop: 200 concurrent upgraded connections, ticker keeps running" {
	require_tool "$PYTHON"
	SHIM_T=60 shim "$PYTHON" "$IO_HELPERS/evloop.py" "$SLOW" 200 4096 2
	[ "$status" -eq 0 ]
}

@test "curl --parallel: 8 http:// URLs over TLS at once" {
	require_tool curl
	local args=() i
	for i in 1 2 3 4 5 6 7 8; do
		args+=(-o "$BATS_TEST_TMPDIR/part$i" "http://127.0.0.1:$WEB/part$i")
	done
	shim curl -sS --parallel --parallel-max 8 "${args[@]}"
	[ "$status" -eq 0 ]
	for i in 1 2 3 4 5 6 7 8; do
		[ "$(sha "$BATS_TEST_TMPDIR/part$i")" = "$(sha "$IO_DIR/www/part$i")" ]
	done
}
