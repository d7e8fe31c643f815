#!/usr/bin/env bats
# Real event loops, unmodified, under the preload: python asyncio, node's
# `net` and curl's multi interface open many upgraded connections at once
# to a TLS server that holds every handshake until the whole group has
# connected (tests/async/delayserver.py --barrier). A loop whose connect()
# waited for its handshake could never open the second connection, so
# completing at all proves connects do not block; the timer ticks counted
# before the first connection is established show the loop kept running
# while the handshakes were pending (counted ticks, no wall clock).

load helpers/common
load async/helpers

N=200

setup_file() {
	certs
	export CERTS
	delay_server PY good --barrier $N --delay-ms 200
	delay_server NODE good --barrier $N --delay-ms 200
	delay_server CURL good --mode http --barrier 8 --delay-ms 100
}

teardown_file() {
	stop_servers
}

setup() {
	P=$BATS_TEST_TMPDIR/p.conf
	write_policy "$P" <<-EOF
	handshake-timeout = 20
	[loops]
	match = 127.0.0.1:$PY_PORT, 127.0.0.1:$NODE_PORT, 127.0.0.1:$CURL_PORT
	ca-file = $CERTS/ca.pem
	EOF
}

# ticks_before_first_connect=T in $output, T >= 3.
assert_ticked() {
	local t
	t=$(printf '%s\n' "$output" | sed -n 's/.*ticks_before_first_connect=\([0-9]*\).*/\1/p')
	[ -n "$t" ] || fail "no tick count in: $output"
	[ "$t" -ge 3 ] || fail "the loop ticked $t times while handshakes were pending"
}

@test "python asyncio: $N concurrent upgraded connections, timer ticking" {
	require_tool python3
	run_client "$TLSSHIM" -p "$P" -- python3 "$ASYNC/loop_client.py" "$PY_PORT" $N
	assert_success
	assert_line --partial "conns=$N echoed=$N "
	assert_ticked
	[ "$(error_lines)" -eq 0 ]
}

@test "node net: $N concurrent upgraded connections, timer ticking" {
	require_tool node
	run_client "$TLSSHIM" -p "$P" -- node "$ASYNC/loop_client.js" "$NODE_PORT" $N
	assert_success
	assert_line --partial "conns=$N echoed=$N "
	assert_ticked
	[ "$(error_lines)" -eq 0 ]
}

@test "curl --parallel: 8 http:// URLs fetched over concurrent TLS handshakes" {
	require_tool curl
	local urls=() i
	for i in 1 2 3 4 5 6 7 8; do
		urls+=("http://127.0.0.1:$CURL_PORT/p$i")
	done
	run_client "$TLSSHIM" -p "$P" -- curl -sS --no-progress-meter \
		--parallel --parallel-immediate --parallel-max 8 "${urls[@]}"
	assert_success
	for i in 1 2 3 4 5 6 7 8; do
		assert_line "async hello, path /p$i"
	done
}
