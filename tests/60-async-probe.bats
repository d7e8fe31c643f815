#!/usr/bin/env bats
# Non-blocking connects under the preload, seen by a C client of the kind
# event loops are made of (tests/async/async_probe.c): connect returns
# EINPROGRESS at once, the handshake advances inside the program's own
# calls, and the fd is "connected" only once the peer is verified.

load helpers/common
load async/helpers

setup_file() {
	certs
	export CERTS
	# Each handshake reply is delayed: a shim that handshook inside
	# connect() could not show EAGAIN/EALREADY while it is pending.
	delay_server SLOW good --delay-ms 200
	delay_server BAD wrongname --delay-ms 50
	delay_server MUTE good --mode silent
}

teardown_file() {
	stop_servers
}

setup() {
	require_tool python3
	[ -x "$PROBE" ] || fail "async_probe not built: $PROBE"
	P=$BATS_TEST_TMPDIR/p.conf
	write_policy "$P" <<-EOF
	handshake-timeout = 2
	[slow]
	match = 127.0.0.1:$SLOW_PORT
	ca-file = $CERTS/ca.pem
	[bad]
	match = 127.0.0.1:$BAD_PORT
	ca-file = $CERTS/ca.pem
	[mute]
	match = 127.0.0.1:$MUTE_PORT
	ca-file = $CERTS/ca.pem
	EOF
}

probe() { # MODE PORT
	shim -p "$P" -- "$PROBE" "$@"
}

@test "poll loop: POLLOUT only once verified, one wakeup, payload echoes" {
	probe poll "$SLOW_PORT"
	assert_success
	assert_output "ok poll"
}

@test "select: the fd turns writable once verified" {
	probe select "$SLOW_PORT"
	assert_success
	assert_output "ok select"
}

@test "epoll level-triggered, registered after connect" {
	probe epoll-lt "$SLOW_PORT"
	assert_success
	assert_output "ok epoll-lt"
}

@test "epoll edge-triggered, registered before connect, is woken" {
	probe epoll-et-before "$SLOW_PORT"
	assert_success
	assert_output "ok epoll-et-before"
}

@test "epoll edge-triggered, registered after connect, is woken once" {
	probe epoll-et-after "$SLOW_PORT"
	assert_success
	assert_output "ok epoll-et-after"
}

@test "epoll one-shot, before and after connect: exactly one event" {
	probe epoll-oneshot "$SLOW_PORT"
	assert_success
	assert_output "ok epoll-oneshot"
	probe epoll-oneshot-before "$SLOW_PORT"
	assert_success
	assert_output "ok epoll-oneshot-before"
}

@test "while handshaking: send/write/recv EAGAIN, SO_ERROR 0, not writable" {
	probe eagain "$SLOW_PORT"
	assert_success
	assert_output "ok eagain"
}

@test "connect again: EALREADY while handshaking, then as the kernel says" {
	probe twice "$SLOW_PORT"
	assert_success
	assert_line "connect again: EALREADY, then 0, then Transport endpoint is already connected"
	assert_line "ok twice"
}

@test "refused handshake: POLLOUT|POLLERR, SO_ERROR ECONNREFUSED, one error line" {
	probe refused "$BAD_PORT"
	assert_success
	assert_line "SO_ERROR: Connection refused"
	assert_line --partial "tlsshim: error: bad 127.0.0.1:$BAD_PORT (127.0.0.1): "
	assert_line --partial "does not match"
	[ "$(error_lines)" -eq 1 ]
}

@test "refused handshake through edge-triggered epoll: EPOLLOUT|EPOLLERR" {
	probe refused-epoll "$BAD_PORT"
	assert_success
	assert_line "SO_ERROR: Connection refused"
	[ "$(error_lines)" -eq 1 ]
}

@test "silent server: an infinite poll wakes at the handshake deadline" {
	probe timeout-poll "$MUTE_PORT"
	assert_success
	assert_line "SO_ERROR: Connection refused"
	assert_line "tlsshim: error: mute 127.0.0.1:$MUTE_PORT (127.0.0.1): TLS handshake timed out after 2000 ms"
}

@test "silent server: an infinite epoll_wait wakes at the handshake deadline" {
	probe timeout-epoll "$MUTE_PORT"
	assert_success
	assert_line "SO_ERROR: Connection refused"
	assert_line "tlsshim: error: mute 127.0.0.1:$MUTE_PORT (127.0.0.1): TLS handshake timed out after 2000 ms"
}

@test "a blocking socket still handshakes inside connect" {
	run_client env LD_PRELOAD="$LIB" TLSSHIM_POLICY="$P" python3 -c "
import socket
s = socket.create_connection(('127.0.0.1', $SLOW_PORT))
s.sendall(b'blocking\n')
print(s.recv(100).decode().strip())
"
	assert_success
	assert_output "blocking"
}
