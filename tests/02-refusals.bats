#!/usr/bin/env bats
# A server whose certificate does not verify is refused: connect() fails
# with ECONNREFUSED, exactly one error line names rule, destination, name
# and GnuTLS's own reason, and no byte of the program's data reaches the
# server. The reasons below are GnuTLS 3.7's texts, word for word.

load helpers/common

NOT_TRUSTED="The certificate is NOT trusted."

setup_file() {
	certs
	export CERTS
}

teardown_file() {
	stop_servers
}

setup() {
	require_tool python3 timeout
}

# refused HOST CERT NAME REASON [policy lines...]: a recording TLS server
# on HOST presenting CERT; the client must be refused with exactly
#   tlsshim: error: bad-CERT DEST (NAME): REASON
# and the server must have decrypted nothing.
refused() {
	local host=$1 cert=$2 name=$3 reason=$4
	shift 4
	local rec=$BATS_TEST_TMPDIR/recorded dest
	tls_server REC record "$cert" --host "$host" --record "$rec"
	case $host in
	*:*) dest="[$host]:$REC_PORT" ;;
	*) dest="$host:$REC_PORT" ;;
	esac
	local p=$BATS_TEST_TMPDIR/p.conf
	{
		echo "[bad-$cert]"
		echo "match = $dest"
		echo "ca-file = $CERTS/ca.pem"
		for l in "$@"; do echo "$l"; done
	} >"$p"
	shim -p "$p" -- python3 "$HELPERS/plainclient.py" send "$host" \
		"$REC_PORT" MARKER-PLAINTEXT-SECRET
	assert_failure
	assert_line --partial "ConnectionRefusedError: [Errno 111]"
	assert_equal "$(error_lines)" 1
	assert_line "tlsshim: error: bad-$cert $dest ($name): $reason"
	# Give the server a moment to write anything it might have decrypted.
	sleep 0.2
	[ ! -e "$rec" ] || refute grep -q MARKER "$rec"
}

@test "wrong host name (sni)" {
	refused 127.0.0.1 wrongname localhost \
		"$NOT_TRUSTED The name in the certificate does not match the expected." \
		"sni = localhost"
}

@test "wrong IP address: no IP SAN for the literal" {
	refused 127.0.0.1 wrongname 127.0.0.1 \
		"$NOT_TRUSTED The name in the certificate does not match the expected."
}

@test "wrong IPv6 address: no IP SAN for ::1" {
	refused ::1 wrongname ::1 \
		"$NOT_TRUSTED The name in the certificate does not match the expected."
}

@test "unknown CA" {
	refused 127.0.0.1 unknownca 127.0.0.1 \
		"$NOT_TRUSTED The certificate issuer is unknown."
}

@test "self-signed certificate not in ca-file" {
	refused 127.0.0.1 selfsigned localhost \
		"$NOT_TRUSTED The certificate issuer is unknown." "sni = localhost"
}

@test "expired certificate" {
	refused 127.0.0.1 expired 127.0.0.1 \
		"$NOT_TRUSTED The certificate chain uses expired certificate."
}

@test "certificate not yet valid" {
	refused 127.0.0.1 notyet 127.0.0.1 \
		"$NOT_TRUSTED The certificate chain uses not yet valid certificate."
}

@test "certificate without the TLS server purpose" {
	refused 127.0.0.1 noserverauth 127.0.0.1 \
		"$NOT_TRUSTED The certificate chain does not match the intended purpose."
}

@test "a server that never answers: refused after handshake-timeout" {
	start_server SILENT silent
	local p=$BATS_TEST_TMPDIR/p.conf
	printf 'handshake-timeout = 2\n[slow]\nmatch = 127.0.0.1:%s\nca-file = %s\n' \
		"$SILENT_PORT" "$CERTS/ca.pem" >"$p"
	shim -p "$p" -- python3 "$HELPERS/plainclient.py" send 127.0.0.1 \
		"$SILENT_PORT" MARKER-PLAINTEXT-SECRET
	assert_failure
	assert_line --partial "ConnectionRefusedError: [Errno 111]"
	assert_equal "$(error_lines)" 1
	assert_line --regexp "^tlsshim: error: slow 127\.0\.0\.1:$SILENT_PORT \(127\.0\.0\.1\): .*timed out"
}

@test "control: a valid chain is accepted and the recorder sees the data" {
	local rec=$BATS_TEST_TMPDIR/recorded
	tls_server OK record good --record "$rec"
	local p=$BATS_TEST_TMPDIR/p.conf
	printf '[ok]\nmatch = 127.0.0.1:%s\nca-file = %s\n' "$OK_PORT" \
		"$CERTS/ca.pem" >"$p"
	shim -p "$p" -- python3 "$HELPERS/plainclient.py" send 127.0.0.1 \
		"$OK_PORT" MARKER-PLAINTEXT-SECRET
	assert_success
	assert_equal "$(error_lines)" 0
	# The client reads until the server closes, and the server closes
	# only after writing what it decrypted.
	run cat "$rec"
	assert_output MARKER-PLAINTEXT-SECRET
}

@test "accepted: the echo server with a valid chain" {
	tls_server GOOD echo good
	local p=$BATS_TEST_TMPDIR/p.conf
	printf '[ok]\nmatch = 127.0.0.1:%s\nca-file = %s\n' "$GOOD_PORT" \
		"$CERTS/ca.pem" >"$p"
	shim -p "$p" -- python3 "$HELPERS/plainclient.py" send 127.0.0.1 \
		"$GOOD_PORT" hello-verified
	assert_success
	assert_output "hello-verified"
}

@test "accepted: a self-signed server whose certificate is the ca-file" {
	tls_server SELF echo selfsigned
	local p=$BATS_TEST_TMPDIR/p.conf
	printf '[self]\nmatch = 127.0.0.1:%s\nsni = localhost\nca-file = %s\n' \
		"$SELF_PORT" "$CERTS/selfsigned.pem" >"$p"
	shim -p "$p" -- python3 "$HELPERS/plainclient.py" send 127.0.0.1 \
		"$SELF_PORT" hello-self
	assert_success
	assert_output "hello-self"
}
