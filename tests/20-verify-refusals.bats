#!/usr/bin/env bats
# Every refusal of issue #5: connect() fails with ECONNREFUSED, one error
# line names the rule, destination, name and the reason, and a server that
# records every raw byte it receives proves no byte of the program's data
# arrived (in plaintext or at all).

load helpers/common
load helpers/verify

setup_file() {
	verify_setup_file vcerts
}

setup() {
	verify_setup
}

@test "refused: expired certificate" {
	vserver S expired
	vpolicy "$P" "$S_PORT"
	vclient 127.0.0.1 "$S_PORT"
	vrefused S 127.0.0.1 "The certificate chain uses expired certificate"
}

@test "refused: certificate not yet valid" {
	vserver S notyet
	vpolicy "$P" "$S_PORT"
	vclient 127.0.0.1 "$S_PORT"
	vrefused S 127.0.0.1 "The certificate chain uses not yet valid certificate"
}

@test "refused: wrong host name" {
	vserver S wrongname
	vpolicy "$P" "$S_PORT" "sni = localhost"
	vclient 127.0.0.1 "$S_PORT"
	vrefused S localhost "The name in the certificate does not match the expected"
}

@test "refused: self-signed certificate not in ca-file" {
	vserver S selfsigned
	vpolicy "$P" "$S_PORT"
	vclient 127.0.0.1 "$S_PORT"
	vrefused S 127.0.0.1 "The certificate issuer is unknown"
}

@test "refused: unknown CA" {
	vserver S unknownca
	vpolicy "$P" "$S_PORT"
	vclient 127.0.0.1 "$S_PORT"
	vrefused S 127.0.0.1 "The certificate issuer is unknown"
}

@test "refused: server omits the intermediate" {
	vserver S chained
	vpolicy "$P" "$S_PORT"
	vclient 127.0.0.1 "$S_PORT"
	vrefused S 127.0.0.1 "The certificate issuer is unknown"
}

@test "refused: certificate revoked by the CRL" {
	vserver S revoked
	vpolicy "$P" "$S_PORT" "crl-file = $CERTS/ca.crl"
	vclient 127.0.0.1 "$S_PORT"
	vrefused S 127.0.0.1 "The certificate chain is revoked"
}

@test "refused: certificate without the server-auth purpose" {
	vserver S noserverauth
	vpolicy "$P" "$S_PORT"
	vclient 127.0.0.1 "$S_PORT"
	vrefused S 127.0.0.1 "purpose"
}

@test "refused: pin mismatch with a valid chain" {
	vserver S good
	vpolicy "$P" "$S_PORT" "pin-sha256 = $(pin_of other-ca)"
	vclient 127.0.0.1 "$S_PORT"
	vrefused S 127.0.0.1 "no pin-sha256 matches a certificate on the validated chain \(server key pin-sha256 $(pin_of good | sed 's/[+/]/\\&/g')\)"
}

@test "refused: pin matches but the host name is wrong" {
	vserver S wrongname
	vpolicy "$P" "$S_PORT" "sni = localhost" \
		"pin-sha256 = $(pin_of wrongname)"
	vclient 127.0.0.1 "$S_PORT"
	vrefused S localhost "does not match the expected"
}

@test "refused: TLS 1.0/1.1-only server" {
	vserver S good --tls-min 1.0 --tls-max 1.1
	vpolicy "$P" "$S_PORT"
	vclient 127.0.0.1 "$S_PORT"
	vrefused S 127.0.0.1 "the server sent a fatal alert: Error in protocol version \(it speaks no TLS version the rule accepts"
}

@test "refused: TLS 1.2 server below min-version = 1.3" {
	vserver S good --tls-max 1.2
	vpolicy "$P" "$S_PORT" "min-version = 1.3"
	vclient 127.0.0.1 "$S_PORT"
	vrefused S 127.0.0.1 "the server sent a fatal alert: Error in protocol version"
}

@test "refused: ALPN required but the server selects none" {
	vserver S good
	vpolicy "$P" "$S_PORT" "alpn = h2" "alpn-required = yes"
	vclient 127.0.0.1 "$S_PORT"
	vrefused S 127.0.0.1 "alpn-required: the server selected none"
}

@test "refused: ALPN required, the server knows other protocols only" {
	vserver S good --alpn spdy/1
	vpolicy "$P" "$S_PORT" "alpn = h2, http/1.1" "alpn-required = yes"
	vclient 127.0.0.1 "$S_PORT"
	vrefused S 127.0.0.1 "(alpn-required: the server selected none|No supported application protocol)"
}

@test "refused: the server requires a client certificate, none configured" {
	vserver S good --client-ca "$CERTS/ca.pem"
	vpolicy "$P" "$S_PORT"
	vclient 127.0.0.1 "$S_PORT"
	vrefused S 127.0.0.1 "the server asks for a client certificate and the rule has none"
}

@test "refused: TLS 1.2 server requires a client certificate, none configured" {
	vserver S good --client-ca "$CERTS/ca.pem" --tls-max 1.2
	vpolicy "$P" "$S_PORT"
	vclient 127.0.0.1 "$S_PORT"
	vrefused S 127.0.0.1 "fatal alert: .*(configure client-cert|Handshake failed|Certificate is required)"
}

@test "refused: RSA-1024 server key" {
	vserver S rsa1024
	vpolicy "$P" "$S_PORT"
	vclient 127.0.0.1 "$S_PORT"
	vrefused S 127.0.0.1 "insecure algorithm"
}

@test "refused: certificate signed with SHA-1" {
	vserver S sha1
	vpolicy "$P" "$S_PORT"
	vclient 127.0.0.1 "$S_PORT"
	vrefused S 127.0.0.1 "insecure algorithm"
}

@test "refused: must-staple certificate without a stapled OCSP response" {
	vserver S mustaple
	vpolicy "$P" "$S_PORT"
	vclient 127.0.0.1 "$S_PORT"
	vrefused S 127.0.0.1 "The certificate requires the server to include an OCSP status in its response, but the OCSP status is missing"
}
