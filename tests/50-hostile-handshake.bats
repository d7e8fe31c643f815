#!/usr/bin/env bats
# Hostile servers during the handshake: the program's connect() fails with
# ECONNREFUSED and one clear error line; nothing crashes or hangs.

load helpers/common
load hostile/hostile

setup_file() {
	certs
	export CERTS
	hostile_server GARBAGE garbage
	hostile_server SILENT silent
	hostile_server CLOSEMID close-mid
	hostile_server ALERT alert
}

teardown_file() {
	stop_servers
}

setup() {
	require_tool python3
	P=$BATS_TEST_TMPDIR/p.conf
}

refused() { # reason-regexp
	no_crash_no_hang
	assert_failure 1
	assert_line "client: connect: ECONNREFUSED"
	[ "$(error_lines)" -eq 1 ] || fail "expected one error line"
	assert_line --regexp "^tlsshim: error: hostile 127\.0\.0\.1:[0-9]+ \(127\.0\.0\.1\): .*$1"
}

@test "garbage instead of a ServerHello" {
	hostile_policy "$GARBAGE_PORT"
	client "$GARBAGE_PORT" connect
	refused '.'
}

@test "a server that accepts and never answers hits handshake-timeout" {
	hostile_policy "$SILENT_PORT"
	client "$SILENT_PORT" connect
	refused '[Tt]ime'
}

@test "a server that closes in the middle of the handshake" {
	hostile_policy "$CLOSEMID_PORT"
	client "$CLOSEMID_PORT" connect
	refused '.'
}

@test "a server that answers with a fatal alert: the alert is named" {
	hostile_policy "$ALERT_PORT"
	client "$ALERT_PORT" connect
	refused '[Hh]andshake failed|alert'
}
