#!/usr/bin/env bats
# Issue 14: a server that does not speak TLS on the port (a banner, an
# error page) is named as such, with what it sent, escaped; connect()
# fails with ECONNREFUSED and nothing the program writes reaches it
# (judged by what the server recorded on the wire).

load helpers/common
load hostile/hostile

setup_file() {
	certs
	export CERTS
	banner SMTP --greet '220 smtp.test ESMTP ready\r\n'
	banner MYSQL --greet 'J\x00\x00\x00\n8.0.36\x00\x08\x00\x00\x00'
	banner HTTP --reply 'HTTP/1.1 400 \x1b[31mBad\x1b[0m\r\n\r\n'
	banner PGSQL --reply 'E\x00\x00\x00\x4eSFATAL\x00C08P01\x00Minvalid length of startup packet\x00\x00'
}

teardown_file() {
	stop_servers
}

# banner NAME ARGS: tests/hostile/banner.py; exports NAME_PORT, records
# what it receives in $BATS_FILE_TMPDIR/NAME.raw.
banner() {
	local name=$1
	shift
	background_server "$name" python3 "$HOSTILE/banner.py" \
		--port-file "$BATS_FILE_TMPDIR/$name.port" \
		--raw "$BATS_FILE_TMPDIR/$name.raw" --max-seconds 300 "$@"
}

setup() {
	require_tool python3
	P=$BATS_TEST_TMPDIR/p.conf
}

# refused NAME SHOWN: under tlsshim, connect to NAME's server, then try
# to write a marker anyway; connect must fail with ECONNREFUSED, the one
# error line must show SHOWN (a fixed string), the output no raw control
# character, and the server's record no marker.
refused() {
	local name=$1 shown=$2 port
	port=$(eval echo "\$${name}_PORT")
	hostile_policy "$port"
	shim -p "$P" -- python3 -c '
import errno, socket, sys
s = socket.socket()
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
    print("client: connected")
except OSError as e:
    print("client: connect: %s" % errno.errorcode[e.errno])
try:
    s.sendall(b"MARKER-" * 64)
    print("client: the marker was sent")
except OSError as e:
    print("client: send: %s" % errno.errorcode[e.errno])
' "$port"
	no_crash_no_hang
	assert_line "client: connect: ECONNREFUSED"
	refute_line "client: the marker was sent"
	[ "$(error_lines)" -eq 1 ] || fail "expected one error line"
	assert_line "tlsshim: error: hostile 127.0.0.1:$port (127.0.0.1): the server does not speak TLS on this port (it sent: $shown)"
	if printf '%s' "$output" |
		LC_ALL=C grep -q "$(printf '[\001-\010\013-\037\177]')"; then
		fail "a raw control character reached the output"
	fi
	local raw=$BATS_FILE_TMPDIR/$name.raw
	[ -s "$raw" ] || fail "the server recorded nothing (not even a ClientHello)"
	[ "$(head -c 1 "$raw" | od -An -tx1 | tr -d ' ')" = 16 ] ||
		fail "the first bytes the server got are not a TLS handshake record"
	! grep -q MARKER "$raw" || fail "the marker reached the server"
}

@test "an SMTP banner: the server does not speak TLS, what it sent is shown" {
	refused SMTP '"220 smtp.test ESMTP ready\r\n"'
}

@test "a MySQL greeting: binary bytes are escaped" {
	refused MYSQL '"J\x00\x00\x00\n8.0.36\x00\x08\x00\x00\x00"'
}

@test "an HTTP error answer with terminal escapes: every control byte escaped" {
	refused HTTP '"HTTP/1.1 400 \x1b[31mBad\x1b[0m\r\n\r\n"'
}

@test "PostgreSQL's error to a startup packet it cannot parse" {
	refused PGSQL '"E\x00\x00\x00NSFATAL\x00C08P01\x00Minvalid leng"...'
}
