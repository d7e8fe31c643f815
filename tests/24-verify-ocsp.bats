#!/usr/bin/env bats
# OCSP stapling: a stapled response is checked when the server sends one;
# a must-staple certificate without a valid staple is refused. Nothing is
# ever fetched. openssl s_server staples (-status_file); verify-server.py
# in front of it records every raw byte.

load helpers/common
load helpers/verify

setup_file() {
	verify_setup_file vcerts
}

setup() {
	verify_setup
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
