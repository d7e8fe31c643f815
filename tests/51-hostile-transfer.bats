#!/usr/bin/env bats
# Hostile servers after the handshake: a reset, an end without
# close_notify, an oversized record. The program sees an error or an EOF
# as it would on a plain socket; nothing crashes, hangs or reads short
# without saying so.

load helpers/common
load hostile/hostile

setup_file() {
	certs
	export CERTS
	hostile_server RESET reset --after 65536
	hostile_server NONOTIFY no-notify --after 100000
	hostile_server BIG oversized
}

teardown_file() {
	stop_servers
}

setup() {
	require_tool python3
	P=$BATS_TEST_TMPDIR/p.conf
}

@test "a reset in the middle of a transfer: ECONNRESET or EPIPE, no hang" {
	hostile_policy "$RESET_PORT"
	client "$RESET_PORT" pingpong
	no_crash_no_hang
	assert_failure 1
	assert_line --regexp '^client: error: (ECONNRESET|EPIPE) after [0-9]+ bytes$'
	refute_line --regexp '^client: eof'
}

# Documented behaviour (README, "Hostile peers"): a stream that ends without
# close_notify reads as a clean EOF after every byte sent; with -v an info
# line notes the missing close_notify.
@test "an end without close_notify: every byte, then a clean EOF" {
	hostile_policy "$NONOTIFY_PORT"
	client "$NONOTIFY_PORT" drain
	no_crash_no_hang
	assert_success
	assert_output "client: eof after 100000 bytes"
}

@test "an end without close_notify: an info-level note with -v" {
	hostile_policy "$NONOTIFY_PORT"
	shim -v -p "$P" -- python3 "$HOSTILE/client.py" 127.0.0.1 \
		"$NONOTIFY_PORT" drain
	no_crash_no_hang
	assert_success
	assert_line "client: eof after 100000 bytes"
	assert_line --regexp '^tlsshim: info: .*close_notify'
	[ "$(error_lines)" -eq 0 ] || fail "no error line expected"
}

@test "a record larger than allowed: an error, one error line" {
	hostile_policy "$BIG_PORT"
	client "$BIG_PORT" drain
	no_crash_no_hang
	assert_failure 1
	assert_line --regexp '^client: error: E[A-Z]+ after 3 bytes$'
	assert_line --regexp '^tlsshim: (error|warn): hostile 127\.0\.0\.1:[0-9]+ .*'
}
