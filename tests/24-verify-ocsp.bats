#!/usr/bin/env bats
# OCSP stapling: a stapled response is checked when the server sends one;
# a must-staple certificate without a valid staple is refused. Nothing is
# ever fetched. openssl s_server staples (-status_file); verify-server.py
# in front of it records every raw byte.

load helpers/common
load helpers/verify

setup_file() {
	require_tool certtool openssl python3
	vcerts
}

teardown_file() {
	stop_servers
}

setup() {
	require_tool python3 certtool openssl
	P=$BATS_TEST_TMPDIR/p.conf
}

# staple_server NAME CERT OCSP-FILE|none: openssl s_server stapling the
# response, behind a raw recorder; exports NAME_PORT (the recorder's).
staple_server() {
	local name=$1 cert=$2 ocsp=$3 port i
	port=$($PY -c 'import socket; s = socket.socket()
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	local args=()
	[ "$ocsp" = none ] || args=(-status_file "$CERTS/$ocsp")
	timeout 120 openssl s_server -accept "127.0.0.1:$port" -www \
		-cert "$CERTS/$cert.pem" -key "$CERTS/$cert.key" "${args[@]}" \
		</dev/null >/dev/null 2>>"$BATS_TEST_TMPDIR/s_server.log" 3>&- &
	echo $! >>"$BATS_FILE_TMPDIR/pids"
	for i in $(seq 100); do
		(exec 4<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
		sleep 0.1
	done
	vserver "$name" x --forward "$port"
}

REQ=$(printf 'GET /%s HTTP/1.0\r\n\r\n' "$MARKER")

sclient() {
	shim -p "$P" -- $PY "$HELPERS/plainclient.py" send 127.0.0.1 \
		"$1" "$REQ"
}

@test "accepted: must-staple certificate with a good staple" {
	staple_server S mustaple mustaple-good.ocsp
	vpolicy "$P" "$S_PORT"
	sclient "$S_PORT"
	assert_success
	assert_output --partial "HTTP/1.0 200 ok"
	assert_equal "$(error_lines)" 0
}

@test "refused: must-staple certificate without a staple" {
	staple_server S mustaple none
	vpolicy "$P" "$S_PORT"
	sclient "$S_PORT"
	vrefused S 127.0.0.1 "The certificate requires the server to include an OCSP status in its response, but the OCSP status is missing"
}

@test "refused: must-staple certificate with a revoked staple" {
	staple_server S mustaple mustaple-revoked.ocsp
	vpolicy "$P" "$S_PORT"
	sclient "$S_PORT"
	vrefused S 127.0.0.1 "The certificate chain is revoked"
}

@test "refused: a stapled revoked status for an ordinary certificate" {
	staple_server S good good-revoked.ocsp
	vpolicy "$P" "$S_PORT"
	sclient "$S_PORT"
	vrefused S 127.0.0.1 "The certificate chain is revoked"
}

@test "accepted: an ordinary certificate without a staple" {
	staple_server S good none
	vpolicy "$P" "$S_PORT"
	sclient "$S_PORT"
	assert_success
	assert_output --partial "HTTP/1.0 200 ok"
}
