#!/usr/bin/env bats
# Verification keys that must be judged before any connection: a CRL that
# does not verify, a bad priority string, incomplete pairs. Each is an
# error of tlsshim --check (which loads the engine) and refuses the
# rule's connections, never a silent skip. And the session keys: the
# host's SSLKEYLOGFILE never gets them; keylog-file does, with a warning.

load helpers/common
load helpers/verify

setup_file() {
	verify_setup_file vcerts
}

setup() {
	verify_setup
}

@test "policy error: a CRL that names the trusted CA but is not signed by it (check and connect)" {
	require_pymod cryptography
	local forged=$BATS_TEST_TMPDIR/forged.crl
	$PY "$HELPERS/labpki.py" forge-crl "$CERTS/ca.pem" "$CERTS/other-ca.key" \
		"$forged"
	vpolicy "$P" 9 "crl-file = $forged"
	shim --check "$P"
	assert_failure
	assert_output "$P:1: rule 'v': crl-file $forged: a CRL is not signed by a trusted CA (its own verification failed)"
	vserver S good
	vpolicy "$P" "$S_PORT" "crl-file = $forged"
	run timeout 30 env TLSSHIM_POLICY="$P" LD_PRELOAD="$LIB" $PY \
		"$HELPERS/plainclient.py" send 127.0.0.1 "$S_PORT" "$MARKER"
	vrefused S 127.0.0.1 "crl-file .*: a CRL is not signed by a trusted CA"
}

# A CRL whose issuer is no trust anchor may be an intermediate's, which
# only a chain can show (--check passes it); but it judges nothing on this
# server's chain, and crl-file must judge the server's certificate.
@test "refused: a CRL signed by an untrusted CA says nothing about the server" {
	vserver S good
	vpolicy "$P" "$S_PORT" "crl-file = $CERTS/other.crl"
	vclient 127.0.0.1 "$S_PORT"
	vrefused S 127.0.0.1 "crl-file .*/other.crl holds no CRL from CN=tlsshim test CA, the issuer of the server's certificate \(CN=good\): its revocation cannot be judged"
}

@test "policy error: crl-file that is no CRL" {
	vpolicy "$P" 9 "crl-file = $CERTS/ca.pem"
	shim --check "$P"
	assert_failure
	assert_output --partial "has no '-----BEGIN X509 CRL-----' block"
}

@test "policy error: priority string, with the position (check and connect)" {
	vpolicy "$P" 9 "priority = NORMAL:+VERS-TLS1.2:+NO-SUCH-THING"
	shim --check "$P"
	assert_failure
	assert_output "$P:1: rule 'v': priority 'NORMAL:+VERS-TLS1.2:+NO-SUCH-THING': syntax error at position 21 ('+NO-SUCH-THING')"
	vserver S good
	vpolicy "$P" "$S_PORT" "priority = NORMAL:+NO-SUCH-THING"
	run timeout 30 env TLSSHIM_POLICY="$P" LD_PRELOAD="$LIB" $PY \
		"$HELPERS/plainclient.py" send 127.0.0.1 "$S_PORT" "$MARKER"
	vrefused S 127.0.0.1 "priority 'NORMAL:\+NO-SUCH-THING': syntax error at position 8"
}

@test "priority cannot bring back TLS 1.1" {
	vserver S good --tls-min 1.0 --tls-max 1.1
	vpolicy "$P" "$S_PORT" "priority = NORMAL:+VERS-TLS1.1:+VERS-TLS1.0"
	vclient 127.0.0.1 "$S_PORT"
	vrefused S 127.0.0.1 "protocol version"
}

@test "policy errors: pairs, values" {
	vpolicy "$P" 9 "client-cert = $CERTS/client.pem"
	shim --check "$P"
	assert_failure
	assert_output --partial "rule 'v' needs both 'client-cert' and 'client-key'"
	vpolicy "$P" 9 "alpn-required = yes"
	shim --check "$P"
	assert_failure
	assert_output --partial "rule 'v' sets 'alpn-required' without 'alpn'"
	vpolicy "$P" 9 "min-version = 1.1"
	shim --check "$P"
	assert_failure
	assert_output --partial "bad min-version '1.1': expected 1.2 or 1.3"
	vpolicy "$P" 9 "pin-sha256 = abc"
	shim --check "$P"
	assert_failure
	assert_output --partial "bad pin-sha256 'abc'"
	vpolicy "$P" 9 "ca-file = $BATS_TEST_TMPDIR/none.pem"
	shim --check "$P"
	assert_failure
	assert_output --partial "cannot read $BATS_TEST_TMPDIR/none.pem"
}

@test "a good policy with every key passes tlsshim --check" {
	chmod 600 "$CERTS/client.key"
	vpolicy "$P" 9 "crl-file = $CERTS/ca.crl" \
		"pin-sha256 = $(pin_of good)" \
		"client-cert = $CERTS/client.pem" \
		"client-key = $CERTS/client.key" "min-version = 1.3" \
		"priority = SECURE256" "alpn = h2, http/1.1" \
		"alpn-required = yes" "keylog-file = $BATS_TEST_TMPDIR/k"
	shim --check "$P"
	assert_success
	assert_output ""
}

@test "the host's SSLKEYLOGFILE never receives tlsshim's keys" {
	require_tool gnutls-cli
	vserver S good
	# GnuTLS does honour the variable: a plain gnutls-cli writes it.
	run timeout 30 env SSLKEYLOGFILE="$BATS_TEST_TMPDIR/cli.keys" \
		gnutls-cli --x509cafile "$CERTS/ca.pem" -p "$S_PORT" \
		localhost </dev/null
	[ -s "$BATS_TEST_TMPDIR/cli.keys" ] ||
		fail "gnutls-cli wrote no SSLKEYLOGFILE: the control failed"
	vpolicy "$P" "$S_PORT"
	SSLKEYLOGFILE=$BATS_TEST_TMPDIR/host.keys vclient 127.0.0.1 "$S_PORT"
	assert_success
	assert_output --partial "$MARKER"
	[ ! -s "$BATS_TEST_TMPDIR/host.keys" ] ||
		fail "tlsshim's session keys reached SSLKEYLOGFILE"
}

@test "keylog-file opts in, with a warning" {
	vserver S good
	vpolicy "$P" "$S_PORT" "keylog-file = $BATS_TEST_TMPDIR/our.keys"
	SSLKEYLOGFILE=$BATS_TEST_TMPDIR/host.keys vclient 127.0.0.1 "$S_PORT"
	assert_success
	assert_output --partial "tlsshim: warn: rule v: keylog-file $BATS_TEST_TMPDIR/our.keys: TLS session keys are written there"
	run grep -cE '^CLIENT_TRAFFIC_SECRET_0 [0-9a-f]{64} [0-9a-f]{64,96}$' \
		"$BATS_TEST_TMPDIR/our.keys"
	assert_output 1
	[ ! -s "$BATS_TEST_TMPDIR/host.keys" ] ||
		fail "tlsshim's session keys reached SSLKEYLOGFILE"
	run stat -c %a "$BATS_TEST_TMPDIR/our.keys"
	assert_output 600
}
