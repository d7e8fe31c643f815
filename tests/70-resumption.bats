#!/usr/bin/env bats
# TLS session resumption (src/engine/tls_cache.c): a second connect to the same
# server under the same rule resumes; a session is never offered to a rule
# verifying another name (GnuTLS would resume it without verifying the
# certificate again); a session the server refuses costs one full
# handshake, never the connection.
#
# Server: bench/bench-server (GnuTLS, TLS 1.3, issues session tickets;
# -R: a ticket key per connection, so no ticket is ever accepted), with
# good.pem from helpers/gencerts.sh (localhost, 127.0.0.1, ::1).

load helpers/common

SERVER=$BUILD/bench/bench-server
CLIENT=$BUILD/bench/bench-client

# bench_server NAME ARGS...: exports NAME_PORT.
bench_server() {
	local name=$1
	shift
	background_server "$name" "$SERVER" -p "$BATS_FILE_TMPDIR/$name.port" \
		-m echo -c "$CERTS/good.pem" -k "$CERTS/good.key" "$@"
}

setup_file() {
	[ -x "$SERVER" ] && [ -x "$CLIENT" ] ||
		fail "bench/ programs not built in $BUILD"
	certs
	export CERTS
	bench_server TICKETS
	bench_server ROTATE -R
}

teardown_file() {
	stop_servers
}

setup() {
	require_tool python3 certtool
}

# policy PORT: rule a (sni localhost) for the server's own port; rule b
# (sni b.test, which the certificate does not name) for 127.0.0.1:1,
# sent by tls-port to the same server.
policy() {
	P=$BATS_TEST_TMPDIR/p.conf
	cat >"$P" <<-EOF
	[a]
	match = 127.0.0.1:$1
	sni = localhost
	ca-file = $CERTS/ca.pem

	[b]
	match = 127.0.0.1:1
	sni = b.test
	ca-file = $CERTS/ca.pem
	tls-port = $1
	EOF
}

under() {
	run env LD_PRELOAD="$LIB" TLSSHIM_POLICY="$P" TLSSHIM_LOG=info \
		timeout 30 "$@"
}

# One process connecting in order to each port given; per connect a line
# "ok" (one byte echoed) or the errno name.
multi() {
	under python3 -c '
import errno, socket, sys
for p in sys.argv[1:]:
    s = socket.socket()
    s.settimeout(10)
    try:
        s.connect(("127.0.0.1", int(p)))
        s.sendall(b"x")
        print("ok" if s.recv(1) == b"x" else "bad echo", flush=True)
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e)), flush=True)
    s.close()
' "$@"
}

count() { # PATTERN: matching lines of $output
	grep -c -- "$1" <<<"$output" || true
}

@test "the second and later connects resume the session" {
	policy "$TICKETS_PORT"
	under "$CLIENT" connect 3 127.0.0.1 "$TICKETS_PORT"
	assert_success
	[ "$(count 'TLS1.3 [^,]*, verified')" -eq 3 ]
	[ "$(count ' resumed, verified')" -eq 2 ]
}

@test "a non-blocking connect (asyncio) resumes too" {
	policy "$TICKETS_PORT"
	under python3 -c '
import asyncio, sys
async def main(port):
    for _ in range(3):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"x")
        await w.drain()
        assert await r.readexactly(1) == b"x"
        w.close()
        await w.wait_closed()
    print("done")
asyncio.run(main(int(sys.argv[1])))
' "$TICKETS_PORT"
	assert_success
	assert_line done
	[ "$(count 'TLS1.3 [^,]*, verified')" -eq 3 ]
	[ "$(count ' resumed, verified')" -eq 2 ]
}

@test "a session verified for localhost never resumes for a rule verifying b.test" {
	policy "$TICKETS_PORT"
	multi "$TICKETS_PORT" 1 "$TICKETS_PORT"
	assert_success
	# a: full handshake; b: refused (the certificate does not name
	# b.test), not resumed; a again: resumes the session b did not take.
	[ "$(grep -v '^tlsshim:' <<<"$output" | tr '\n' ' ')" = "ok ECONNREFUSED ok " ]
	assert_output --partial "tlsshim: error: b 127.0.0.1:1 (b.test): The certificate is NOT trusted. The name in the certificate does not match the expected."
	refute_output --partial "(b.test): TLS1.3"
	[ "$(count ' resumed, verified')" -eq 1 ]
	assert_output --regexp "rule a 127.0.0.1:$TICKETS_PORT \(localhost\): TLS1.3 [^,]* resumed, verified"
}

@test "a session the server refuses falls back to one full handshake" {
	policy "$ROTATE_PORT"
	under "$CLIENT" connect 3 127.0.0.1 "$ROTATE_PORT"
	assert_success
	[ "$(count 'TLS1.3 AES-256-GCM, verified')" -eq 3 ]
	refute_output --partial resumed
}
