#!/usr/bin/env bats
# A server whose certificate does not verify is refused: connect() fails
# with ECONNREFUSED, one error line names rule, destination, name and
# GnuTLS's reason, and no byte of the program's data reaches the server.

load helpers/common

setup_file() {
	certs
	export CERTS
}

teardown_file() {
	stop_servers
}

setup() {
	require_tool python3
}

# refused CERT NAME REASON-REGEX [policy lines...]
refused() {
	local cert=$1 name=$2 reason=$3
	shift 3
	local rec=$BATS_TEST_TMPDIR/recorded
	tls_server REC record "$cert" --record "$rec"
	local p=$BATS_TEST_TMPDIR/p.conf
	{
		echo "[bad-$cert]"
		echo "match = 127.0.0.1:$REC_PORT"
		echo "ca-file = $CERTS/ca.pem"
		for l in "$@"; do echo "$l"; done
	} >"$p"
	shim -p "$p" -- python3 "$HELPERS/plainclient.py" send 127.0.0.1 \
		"$REC_PORT" MARKER-PLAINTEXT-SECRET
	assert_failure
	assert_output --partial "Connection refused"
	assert_equal "$(error_lines)" 1
	assert_output --regexp "tlsshim: error: bad-$cert 127\.0\.0\.1:$REC_PORT \($name\): .*$reason"
	sleep 0.2
	if [ -e "$rec" ]; then
		run grep -c MARKER "$rec"
		assert_output 0
	fi
}

@test "wrong host name" {
	refused wrongname localhost \
		"The certificate is NOT trusted\. The name in the certificate does not match the expected\." \
		"sni = localhost"
}

@test "wrong IP address (no IP SAN for the literal)" {
	refused wrongname 127.0.0.1 "does not match the expected"
}

@test "unknown CA" {
	refused unknownca 127.0.0.1 "The certificate issuer is unknown\."
}

@test "self-signed certificate not in ca-file" {
	refused selfsigned 127.0.0.1 "The certificate issuer is unknown\."
}

@test "expired certificate" {
	refused expired 127.0.0.1 "expired"
}

@test "certificate not yet valid" {
	refused notyet 127.0.0.1 "not yet (valid|activated)"
}

@test "certificate without the TLS server purpose" {
	refused noserverauth 127.0.0.1 "purpose"
}

@test "accepted: the same server with a valid chain" {
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
