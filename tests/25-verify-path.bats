#!/usr/bin/env bats
# The validated path (issue 13): pins, CRLs and stapled OCSP responses are
# judged on the chain GnuTLS verified, leaf -> intermediate -> trust
# anchor, never on certificates the server merely sent; CRLs of an
# intermediate work, expire and are re-read while the program runs;
# must-staple holds whatever the priority string says. A lab PKI
# (tests/helpers/labpki.py): root (ca-file), an intermediate that issues
# the leaves and its own CRL, a second leaf with another key for the same
# name, a rogue self-signed CA.

load helpers/common
load helpers/verify

setup_file() {
	verify_setup_file labcerts
}

setup() {
	verify_setup lab
}

# ---- pins ----

@test "pins: a pinned certificate merely appended to a CA-valid chain is refused" {
	# leaf2 (another key, CA-valid for the name) + inter + leaf: the
	# pinned leaf is sent, but it is not on the validated path.
	vserver S leaf2-bait-full --key "$CERTS/leaf2.key"
	vpolicy "$P" "$S_PORT" "pin-sha256 = $(pin_of leaf)"
	vclient 127.0.0.1 "$S_PORT"
	vrefused S 127.0.0.1 "no pin-sha256 matches a certificate on the validated chain \(server key pin-sha256 $(pin_of leaf2 | sed 's/[+/]/\\&/g')\)"
}

@test "pins: leaf, intermediate and trust anchor of the validated path match" {
	vserver S leaf-full --key "$CERTS/leaf.key"
	local c
	for c in leaf inter ca; do
		vpolicy "$P" "$S_PORT" "pin-sha256 = $(pin_of "$c")"
		vclient 127.0.0.1 "$S_PORT"
		assert_success
		assert_output "$MARKER"
	done
	run grep -o "$MARKER" "$BATS_TEST_TMPDIR/S.plain"
	assert_equal "${#lines[@]}" 3
}

# ---- CRLs ----

@test "CRL of the intermediate: --check accepts it and the good server is accepted" {
	vpolicy "$P" 9 "crl-file = $CERTS/inter-fresh.crl"
	shim --check "$P"
	assert_success
	assert_output ""
	vserver S leaf-full --key "$CERTS/leaf.key"
	vpolicy "$P" "$S_PORT" "crl-file = $CERTS/inter-fresh.crl"
	vclient 127.0.0.1 "$S_PORT"
	vaccepted S
}

@test "CRL of the intermediate: a certificate it lists is refused as revoked" {
	vserver S revoked-full --key "$CERTS/revoked.key"
	vpolicy "$P" "$S_PORT" "crl-file = $CERTS/inter.crl"
	vclient 127.0.0.1 "$S_PORT"
	vrefused S 127.0.0.1 "The certificate chain is revoked\. \(CN=lab revoked, by CRL 1 of crl-file .*/inter.crl\)"
	# The same CRL file does not touch a certificate it does not list.
	vserver T leaf-full --key "$CERTS/leaf.key"
	vpolicy "$P" "$T_PORT" "crl-file = $CERTS/inter.crl"
	vclient 127.0.0.1 "$T_PORT"
	vaccepted T
}

@test "CRL naming the intermediate but not signed by it is refused" {
	$PY "$HELPERS/labpki.py" forge-crl "$CERTS/inter.pem" \
		"$CERTS/rogue.key" "$BATS_TEST_TMPDIR/forged.crl"
	vserver S leaf-full --key "$CERTS/leaf.key"
	vpolicy "$P" "$S_PORT" "crl-file = $BATS_TEST_TMPDIR/forged.crl"
	vclient 127.0.0.1 "$S_PORT"
	vrefused S 127.0.0.1 "crl-file .*/forged.crl: CRL 1 names CN=tlsshim lab intermediate \(on the server's chain\) as its issuer but is not signed by it"
}

# One program, one process, four connections, the CRL changing under it
# as a cron job would change it (written aside, renamed into place).
@test "CRL expiry is checked at every handshake and a renewed crl-file is read again" {
	local crl=$BATS_TEST_TMPDIR/crl.pem
	$PY "$HELPERS/labpki.py" crl "$CERTS" inter "$crl" --next 5
	vserver S leaf-full --key "$CERTS/leaf.key"
	vpolicy "$P" "$S_PORT" "crl-file = $crl"
	# The files are looked at every 2 seconds at most: 2.5 s after each
	# renewal, the next connect reads them.
	local cron="$PY $HELPERS/labpki.py crl $CERTS inter $crl"
	run timeout 60 env TLSSHIM_POLICY="$P" LD_PRELOAD="$LIB" $PY \
		"$HELPERS/timed-client.py" "$S_PORT" "$MARKER" \
		conn at=6.5 conn "run=$cron --next 86400" sleep=2.5 conn \
		"run=$cron --revoke leaf" sleep=2.5 conn
	assert_success
	assert_line "1 ok"
	assert_line "2 refused"
	assert_line "3 ok"
	assert_line "4 refused"
	assert_output --regexp "tlsshim: error: v 127\.0\.0\.1:$S_PORT \(127\.0\.0\.1\): crl-file .*crl\.pem: CRL 1 is out of date \(next update has passed"
	assert_output --regexp "tlsshim: error: v 127\.0\.0\.1:$S_PORT \(127\.0\.0\.1\): The certificate is NOT trusted\. The certificate chain is revoked"
	# On the wire: the server got the first and the third, nothing else.
	sleep 0.3
	run cat "$BATS_TEST_TMPDIR/S.plain"
	assert_output "$MARKER-1$MARKER-3"
	run grep -c "$MARKER" "$BATS_TEST_TMPDIR/S.raw"
	assert_output 0
}

@test "a ca-file that changed is read again: the new anchors are used" {
	local ca=$BATS_TEST_TMPDIR/ca.pem
	cp "$CERTS/rogue.pem" "$ca"
	vserver S leaf-full --key "$CERTS/leaf.key"
	vpolicy "$P" "$S_PORT" "ca-file = $ca"
	run timeout 60 env TLSSHIM_POLICY="$P" LD_PRELOAD="$LIB" $PY \
		"$HELPERS/timed-client.py" "$S_PORT" "$MARKER" \
		conn "run=cp $CERTS/ca.pem $ca.new && mv $ca.new $ca" sleep=2.5 \
		conn
	assert_success
	assert_line "1 refused"
	assert_line "2 ok"
	assert_output --partial "The certificate issuer is unknown"
	sleep 0.3
	run cat "$BATS_TEST_TMPDIR/S.plain"
	assert_output "$MARKER-2"
}

# Under a new root the same path names another file, one the chrooted
# tree may let others write: the policy's own bytes stay in use.
@test "after chroot, a ca-file by the same path in the new root is not read" {
	[ "$(id -u)" -eq 0 ] || fail "this test needs root (chroot)"
	local ca=$BATS_TEST_TMPDIR/ca.pem root=$BATS_TEST_TMPDIR/root
	cp "$CERTS/rogue.pem" "$ca"
	mkdir -p "$root$BATS_TEST_TMPDIR"
	cp "$CERTS/ca.pem" "$root$ca" # would make the server verify
	vserver S leaf-full --key "$CERTS/leaf.key"
	vpolicy "$P" "$S_PORT" "ca-file = $ca"
	run timeout 30 env TLSSHIM_POLICY="$P" LD_PRELOAD="$LIB" $PY -c '
import errno, os, socket, sys
"x".encode("idna")  # codecs load from files: before the chroot
os.chroot(sys.argv[1])
os.chdir("/")
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=10)
    s.sendall(sys.argv[3].encode())
    print("connected")
except OSError as e:
    print("refused" if e.errno == errno.ECONNREFUSED else e)
' "$root" "$S_PORT" "$MARKER"
	assert_success
	assert_line refused
	assert_output --partial "The certificate issuer is unknown"
	no_plaintext S
}

# GnuTLS does not verify a resumed session: it trusts its own ticket.
@test "no session is resumed past its chain's expiry: the expired certificate is refused" {
	$PY "$HELPERS/labpki.py" leaf "$CERTS" short --seconds 5
	vserver S short-full --key "$CERTS/short.key"
	vpolicy "$P" "$S_PORT"
	run timeout 60 env TLSSHIM_LOG=debug TLSSHIM_POLICY="$P" \
		LD_PRELOAD="$LIB" $PY "$HELPERS/timed-client.py" "$S_PORT" \
		"$MARKER" conn at=7 conn
	assert_success
	assert_line "1 ok"
	assert_line "2 refused"
	assert_output --regexp "tlsshim: error: v 127\.0\.0\.1:$S_PORT \(127\.0\.0\.1\): The certificate is NOT trusted\. The certificate chain uses expired certificate"
	sleep 0.3
	run cat "$BATS_TEST_TMPDIR/S.plain"
	assert_output "$MARKER-1"
}

# ---- stapled OCSP responses ----

@test "OCSP: a staple signed by a certificate the server appended is refused" {
	staple_server S mustaple ocsp-rogue.der \
		-cert_chain "$CERTS/inter-rogue.pem"
	vpolicy "$P" "$S_PORT"
	sclient "$S_PORT"
	vrefused S 127.0.0.1 "the stapled OCSP response for CN=lab mustaple is not signed by its issuer \(CN=tlsshim lab intermediate\) or by a responder that issuer authorised"
}

@test "OCSP: a staple signed by the issuer, or by a responder it certified, is accepted" {
	local o
	for o in ocsp-good.der ocsp-delegate.der; do
		staple_server S mustaple "$o" -cert_chain "$CERTS/inter.pem"
		vpolicy "$P" "$S_PORT"
		sclient "$S_PORT"
		assert_success
		assert_output --partial "HTTP/1.0 200 ok"
		assert_equal "$(error_lines)" 0
	done
}

@test "OCSP: a responder certified by the root, not by the issuer, is refused" {
	staple_server S mustaple ocsp-rootdelegate.der \
		-cert_chain "$CERTS/inter.pem"
	vpolicy "$P" "$S_PORT"
	sclient "$S_PORT"
	vrefused S 127.0.0.1 "not signed by its issuer \(CN=tlsshim lab intermediate\) or by a responder that issuer authorised"
}

@test "OCSP: a staple for another certificate, or out of date, is refused" {
	staple_server S mustaple ocsp-other.der -cert_chain "$CERTS/inter.pem"
	vpolicy "$P" "$S_PORT"
	sclient "$S_PORT"
	vrefused S 127.0.0.1 "(OCSP|revocation)"
	staple_server T mustaple ocsp-old.der -cert_chain "$CERTS/inter.pem"
	vpolicy "$P" "$T_PORT"
	sclient "$T_PORT"
	vrefused T 127.0.0.1 "(out of date|old|superseded)"
}

@test "must-staple holds when the priority string stops status_request" {
	# RSA, TLS 1.2: what a client that sends no extension can reach.
	staple_server S mustaple ocsp-good.der -cert_chain "$CERTS/inter.pem" \
		-cipher 'ALL:@SECLEVEL=0'
	vpolicy "$P" "$S_PORT" "priority = NORMAL:%NO_EXTENSIONS"
	sclient "$S_PORT"
	vrefused S 127.0.0.1 "The certificate requires the server to include an OCSP status in its response, but the OCSP status is missing"
	# The same server with the stapling the default priority asks for.
	vpolicy "$P" "$S_PORT"
	sclient "$S_PORT"
	assert_success
	assert_output --partial "HTTP/1.0 200 ok"
}
