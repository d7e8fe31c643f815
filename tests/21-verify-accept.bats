#!/usr/bin/env bats
# What verifies is accepted, with the name chosen as documented: the rule's
# sni, else the name the program resolved, else the IP literal (never sent
# as SNI). The recorder that proves refusals sees only ciphertext here.

load helpers/common
load helpers/verify

setup_file() {
	verify_setup_file vcerts
}

setup() {
	verify_setup
}

@test "accepted: valid chain with the intermediate" {
	vserver S chained-full
	vpolicy "$P" "$S_PORT"
	vclient 127.0.0.1 "$S_PORT"
	vaccepted S
}

@test "accepted: self-signed server whose certificate is the ca-file" {
	vserver S selfsigned
	vpolicy "$P" "$S_PORT" "ca-file = $CERTS/selfsigned.pem"
	vclient 127.0.0.1 "$S_PORT"
	vaccepted S
}

@test "accepted: IP literal against an IP SAN, no SNI sent" {
	vserver S good --sni "$BATS_TEST_TMPDIR/sni"
	vpolicy "$P" "$S_PORT"
	TLSSHIM_LOG=debug vclient 127.0.0.1 "$S_PORT"
	assert_output --partial "verifying 127.0.0.1 (IP literal, no SNI sent)"
	assert_output --partial "$MARKER"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/sni")" "-"
}

@test "accepted: the name learned from getaddrinfo (certificate has no IP SAN)" {
	vserver S nameonly --sni "$BATS_TEST_TMPDIR/sni"
	vpolicy "$P" "$S_PORT"
	TLSSHIM_LOG=debug vclient localhost "$S_PORT"
	assert_output --partial "verifying localhost (name the program resolved)"
	assert_output --partial "$MARKER"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/sni")" "localhost"
	# The same certificate fails as an IP literal: the name mattered.
	vclient 127.0.0.1 "$S_PORT"
	assert_failure
	assert_output --partial "does not match the expected"
}

@test "accepted: a host-name rule matches the resolved name" {
	vserver S nameonly
	printf '[v]\nmatch = localhost:%s\nca-file = %s\n' "$S_PORT" \
		"$CERTS/ca.pem" >"$P"
	vclient localhost "$S_PORT"
	vaccepted S
	# By address, the host-name rule does not apply: plain TCP to a TLS
	# server, which gets the program's bytes as they are.
	vclient 127.0.0.1 "$S_PORT"
	assert_equal "$(error_lines)" 0
	run grep -c "$MARKER" "$BATS_TEST_TMPDIR/S.raw"
	assert_output 1
}

@test "accepted: the rule's sni wins over the resolved name" {
	vserver S good --sni "$BATS_TEST_TMPDIR/sni"
	vpolicy "$P" "$S_PORT" "sni = localhost"
	TLSSHIM_LOG=debug vclient 127.0.0.1 "$S_PORT"
	assert_output --partial "verifying localhost (sni from the rule)"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/sni")" "localhost"
	assert_output --partial "$MARKER"
}

@test "accepted: pin of the server key, and one of several pins" {
	vserver S good
	vpolicy "$P" "$S_PORT" "pin-sha256 = $(pin_of other-ca)" \
		"pin-sha256 = $(pin_of good)"
	vclient 127.0.0.1 "$S_PORT"
	vaccepted S
}

@test "accepted: pin of the intermediate the server sends" {
	vserver S chained-full
	vpolicy "$P" "$S_PORT" "pin-sha256 = $(pin_of inter)"
	vclient 127.0.0.1 "$S_PORT"
	vaccepted S
}

@test "accepted: pins hold on resumed sessions too" {
	vserver S chained-full
	vpolicy "$P" "$S_PORT" "pin-sha256 = $(pin_of chained)"
	run timeout 30 env TLSSHIM_LOG=info TLSSHIM_POLICY="$P" \
		LD_PRELOAD="$LIB" $PY -c '
import socket, sys
for i in range(3):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
    s.sendall(b"x")
    assert s.recv(10) == b"x"
    s.close()
print("three done")' "$S_PORT"
	assert_success
	assert_output --partial "three done"
	assert_output --partial "resumed, verified"
	assert_equal "$(error_lines)" 0
}

@test "accepted: a CRL that does not list the server" {
	vserver S good
	vpolicy "$P" "$S_PORT" "crl-file = $CERTS/ca.crl"
	vclient 127.0.0.1 "$S_PORT"
	vaccepted S
}

@test "accepted: ALPN required and selected" {
	vserver S good --alpn http/1.1
	vpolicy "$P" "$S_PORT" "alpn = h2, http/1.1" "alpn-required = yes"
	vclient 127.0.0.1 "$S_PORT"
	vaccepted S
}

@test "accepted: ALPN offered, not required, server selects none" {
	vserver S good
	vpolicy "$P" "$S_PORT" "alpn = h2"
	vclient 127.0.0.1 "$S_PORT"
	vaccepted S
}

@test "accepted: mutual TLS with client-cert and client-key" {
	vserver S good --client-ca "$CERTS/ca.pem"
	chmod 600 "$CERTS/client.key"
	vpolicy "$P" "$S_PORT" "client-cert = $CERTS/client.pem" \
		"client-key = $CERTS/client.key"
	vclient 127.0.0.1 "$S_PORT"
	vaccepted S
}

@test "accepted with a warning: client-key readable by others" {
	vserver S good --client-ca "$CERTS/ca.pem"
	cp "$CERTS/client.key" "$BATS_TEST_TMPDIR/open.key"
	chmod 644 "$BATS_TEST_TMPDIR/open.key"
	vpolicy "$P" "$S_PORT" "client-cert = $CERTS/client.pem" \
		"client-key = $BATS_TEST_TMPDIR/open.key"
	vclient 127.0.0.1 "$S_PORT"
	assert_success
	assert_output --partial "tlsshim: warn: rule v: client-key $BATS_TEST_TMPDIR/open.key is readable by group or others"
	assert_output --partial "$MARKER"
}

@test "accepted: min-version = 1.3 against a TLS 1.3 server" {
	vserver S good
	vpolicy "$P" "$S_PORT" "min-version = 1.3"
	vclient 127.0.0.1 "$S_PORT"
	vaccepted S
}

@test "accepted: an expert priority string" {
	vserver S good
	vpolicy "$P" "$S_PORT" "priority = SECURE256:+SECURE128"
	vclient 127.0.0.1 "$S_PORT"
	vaccepted S
}
