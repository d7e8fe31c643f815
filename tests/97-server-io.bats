#!/usr/bin/env bats
# Server mode (issue 16): the libc paths an unmodified server uses on an
# accepted connection behave as on a plain socket, only encrypted: dup,
# sendfile, shutdown(SHUT_WR) then reading on, fork with the child
# answering, TCP options and address queries, non-blocking I/O through
# select. The server is tests/server/serverio.py (Python's socket and os
# calls, i.e. libc's) under an accept rule; each client is Python's ssl,
# verifying the server, and checks every byte it got; the server's
# record says what the program saw.

load server/helpers

setup_file() {
	srv_certs
	IO_PORT=$(srv_free_port) SHUT_PORT=$(srv_free_port)
	export IO_PORT SHUT_PORT
	accept_rule io-in "127.0.0.1:$IO_PORT, 127.0.0.1:$SHUT_PORT" \
		>"$BATS_FILE_TMPDIR/io.conf"
	srv_run IO "$BATS_FILE_TMPDIR/io.conf" \
		python3 "$SRV/serverio.py" serve "$IO_PORT" "$BATS_FILE_TMPDIR/IO.rec" \
		--shut-first "$SHUT_PORT"
	srv_wait IO listening "$IO_PORT" || true
	srv_wait IO listening "$SHUT_PORT" || true
}

teardown_file() {
	stop_servers
}

# io CASE [ARGS]: the client's check of CASE; then the record line of
# CASE, in $line. PORT: the server's port (default IO_PORT).
io() {
	srv_need IO
	local n port=${PORT:-$IO_PORT}
	n=$(rec_count IO "$1 ")
	run timeout 60 python3 "$SRV/serverio.py" check "$1" "$port" \
		--ca "$CERTS/ca.pem" "${@:2}"
	[ "$(out result)" = ok ] || fail "case $1: $output; record: $(tail -n 3 "$BATS_FILE_TMPDIR/IO.rec" 2>/dev/null)"
	line=$(rec_next IO "$1 " "$n") || fail "the server recorded nothing for $1"
	expect_verified IO io-in "$(out local)" "127.0.0.1:$port" \
		"no client certificate asked"
}

@test "dup: bytes written through a dup of the fd, then through the original after the dup is closed, arrive in order" {
	io dup
	[ "$line" = "dup ok" ] || fail "$line"
}

@test "sendfile: a 3 MB file sent with sendfile(2) arrives whole" {
	local f=$BATS_TEST_TMPDIR/file
	head -c 3000000 /dev/urandom >"$f"
	io sendfile --file "$f"
	[ "$(out bytes)" = 3000000 ] || fail "$output"
	[ "$line" = "sendfile sent=3000000" ] || fail "$line"
}

@test "shutdown(SHUT_WR): the client reads the reply and a clean end of stream; the server still reads what the client sends after" {
	io shutdown
	[ "$(out eof)" = clean ] || fail "$output"
	[ "$line" = "shutdown late=late-line" ] || fail "$line"
}

@test "fork: the child answers on the inherited fd and reads the client's next line; the parent's close of its copy ends nothing" {
	io fork
	[ "$line" = "fork child-read=hello-child" ] || fail "$line"
}

@test "socket options and addresses: TCP_NODELAY set and read back, SO_TYPE stream, SO_ERROR 0, getpeername the client itself" {
	io sockopt
	[[ $line == "sockopt nodelay=1 type=1 error=0 peer=$(out local) local=127.0.0.1:$IO_PORT" ]] ||
		fail "$line"
}

@test "non-blocking: a request read through select(), 4 MiB written back with partial sends, byte-exact" {
	io nonblock
	[ "$(out bytes)" = 4194304 ] || fail "$output"
	[[ $line =~ ^nonblock\ read=3001\ sent=4194304\ partial=([0-9]+)\ eagain=[0-9]+$ ]] ||
		fail "$line"
	[ "${BASH_REMATCH[1]}" -gt 0 ] || fail "no send came back partial: the path was not tried: $line"
}

@test "shutdown(SHUT_WR) before any other call: the handshake completes first, then the client reads a clean end of stream and the server still reads" {
	PORT=$SHUT_PORT io shutfirst
	[ "$(out eof)" = clean ] || fail "$output"
	[ "$line" = "shutfirst got=shutfirst" ] || fail "$line"
}
