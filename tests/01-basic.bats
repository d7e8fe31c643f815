#!/usr/bin/env bats
# An unmodified plaintext client becomes a verified TLS client.

load helpers/common

setup_file() {
	certs
	export CERTS
	tls_server HTTP http good
	tls_server SHA sha256 good
	start_server PLAIN http --plain
	start_server RAW raw-record --record "$BATS_FILE_TMPDIR/raw"
}

teardown_file() {
	stop_servers
}

setup() {
	require_tool curl python3 sha256sum
	P=$BATS_TEST_TMPDIR/p.conf
}

# web_policy: $P upgrades the HTTP test server's port, trusting ca.pem.
web_policy() {
	write_policy "$P" <<-EOF
	[web]
	match = 127.0.0.1:$HTTP_PORT
	ca-file = $CERTS/ca.pem
	EOF
}

@test "curl http:// gets its answer over verified TLS" {
	web_policy
	shim -p "$P" -- curl -sS "http://127.0.0.1:$HTTP_PORT/round-trip"
	assert_success
	assert_output "hello from the tls server, path /round-trip"
}

@test "tls-port: the program asks for one port, TLS goes to another" {
	write_policy "$P" <<-EOF
	[web]
	match = 127.0.0.1:1
	sni = localhost
	ca-file = $CERTS/ca.pem
	tls-port = $HTTP_PORT
	EOF
	shim -p "$P" -- curl -sS "http://127.0.0.1:1/moved"
	assert_success
	assert_output "hello from the tls server, path /moved"
}

@test "10 MB arrive intact (sha256 computed by the TLS server)" {
	head -c 10485760 /dev/urandom >"$BATS_TEST_TMPDIR/blob"
	want=$(sha256sum "$BATS_TEST_TMPDIR/blob" | cut -d' ' -f1)
	write_policy "$P" <<-EOF
	[sink]
	match = $SHA_PORT
	ca-file = $CERTS/ca.pem
	EOF
	shim -p "$P" -- python3 "$HELPERS/plainclient.py" sha256 127.0.0.1 \
		"$SHA_PORT" "$BATS_TEST_TMPDIR/blob"
	assert_success
	assert_output "$want"
}

@test "a port no rule matches passes through untouched" {
	web_policy
	shim -p "$P" -- curl -sS "http://127.0.0.1:$PLAIN_PORT/plain"
	assert_success
	assert_output "hello from the tls server, path /plain"
}

@test "the first bytes on a matched connection are a TLS ClientHello" {
	rm -f "$BATS_FILE_TMPDIR/raw"
	write_policy "$P" <<-EOF
	handshake-timeout = 3
	[raw]
	match = 127.0.0.1:$RAW_PORT
	ca-file = $CERTS/ca.pem
	EOF
	shim -p "$P" -- python3 "$HELPERS/plainclient.py" send 127.0.0.1 \
		"$RAW_PORT" MARKER-PLAINTEXT-SECRET
	assert_failure
	[ -s "$BATS_FILE_TMPDIR/raw" ] || fail "the listener recorded nothing"
	# A handshake record (0x16) of TLS 1.x (0x03), then a ClientHello (1).
	run od -An -tx1 -N6 "$BATS_FILE_TMPDIR/raw"
	assert_output --regexp '^ *16 03 0[0-3] [0-9a-f]{2} [0-9a-f]{2} 01$'
	run grep -c MARKER-PLAINTEXT-SECRET "$BATS_FILE_TMPDIR/raw"
	assert_output 0
}
