#!/usr/bin/env bats
# Server mode (issue 16) under load, with the unmodified C servers
# (tests/server/): 200 concurrent handshakes against the epoll server
# while one client never says ClientHello, and 100 MB each way through
# the thread server (16 MB through the epoll server), byte-exact by
# SHA-256 on both ends. SERVER_BULK_BYTES sets the size (under the
# sanitizer step, TLSSHIM_SAN_PRELOAD set, 32 MB: there the point is
# memory errors); SERVER_CONNS the number of concurrent clients.

load server/helpers

setup_file() {
	srv_certs
	export BULK=${SERVER_BULK_BYTES:-100000000}
	[ -z "${TLSSHIM_SAN_PRELOAD:-}" ] || BULK=${SERVER_BULK_BYTES:-32000000}
	export CONNS=${SERVER_CONNS:-200}
	export EP=$(srv_free_port) TP=$(srv_free_port)
	export P=$BATS_FILE_TMPDIR/p.conf
	{
		# The silent client must still be pending when the others are
		# done.
		echo "handshake-timeout = 60"
		accept_rule load "127.0.0.1:$EP, 127.0.0.1:$TP" \
			"client-ca = $CERTS/clients-ca.pem" "client-name = app1.internal"
	} >"$P"
	srv_c EPOLL epoll "$P" -P "$EP" || true
	srv_c THREAD thread "$P" -P "$TP" || true
}

teardown_file() {
	stop_servers
}

@test "epoll server: 200 concurrent mTLS handshakes all complete while one client that never sends a ClientHello is still pending" {
	srv_need EPOLL
	local ports=$BATS_TEST_TMPDIR/ports p n
	tls_client many "$EP" "$CONNS" --ports-out "$ports" --timeout 50 \
		--cert "$CERTS/app1.pem" --key "$CERTS/app1.key"
	[ "$(out ok)" = "$CONNS" ] || fail "not all $CONNS clients were served: $output"
	[ "$(out silent)" = pending ] ||
		fail "the silent client was no longer pending when the others were done: $output"
	[ "$status" -eq 0 ] || fail "$output"
	# Each client's own address is what the program's getpeername gave,
	# and the program read exactly its line.
	n=0
	while read -r p; do
		l=$(rec_wait EPOLL "close peer=$p ") || fail "the program did not record $p"
		[ "$(field "$l" end)" = eof ] && [ "$(field "$l" in)" -ge 8 ] ||
			fail "client $p: $l"
		n=$((n + 1))
	done <"$ports"
	[ "$n" -eq "$CONNS" ] || fail "$n clients recorded"
	[ "$(log_lines EPOLL ", client verified (app1.internal)" | wc -l)" -eq "$CONNS" ] ||
		fail "not $CONNS verified-client lines: $(log_lines EPOLL 'tlsshim: ' | sort | uniq -c | head)"
	# The silent one is the only connection the program has not seen end.
	[ "$(grep -c '^accept ' "$BATS_FILE_TMPDIR/EPOLL.rec")" -eq $((CONNS + 1)) ] ||
		fail "accepts: $(grep -c '^accept ' "$BATS_FILE_TMPDIR/EPOLL.rec")"
}

# bulk NAME PORT BYTES: BYTES of random data sent while the echo is read;
# the client got back exactly what it sent, and the program read exactly
# that (count and SHA-256).
bulk() {
	local name=$1 port=$2 bytes=$3 data=$BATS_TEST_TMPDIR/data sum l
	srv_need "$name"
	head -c "$bytes" /dev/urandom >"$data"
	sum=$(sha256sum <"$data" | cut -d' ' -f1)
	tls_client bulk "$port" "$data" --timeout 55 \
		--cert "$CERTS/app1.pem" --key "$CERTS/app1.key"
	[ "$(out result)" = ok ] || fail "$output"
	[ "$(out app)" = "$bytes" ] && [ "$(out sha256)" = "$sum" ] ||
		fail "the client did not get back what it sent: $output (sent sha256 $sum)"
	l=$(rec_wait "$name" "close peer=$(out local) ") || fail "no record"
	[ "$(field "$l" in)" = "$bytes" ] && [ "$(field "$l" sha256)" = "$sum" ] &&
		[ "$(field "$l" out)" = "$bytes" ] ||
		fail "the program did not read exactly what was sent: $l (sent $bytes, sha256 $sum)"
	[ "$(field "$l" end)" = eof ] || fail "$l"
	rm -f "$data"
}

@test "thread server: 100 MB each way (32 MB under the sanitizers), byte-exact (SHA-256) at the client and in the program" {
	bulk THREAD "$TP" "$BULK"
}

@test "epoll server: 16 MB each way through partial non-blocking reads and writes, byte-exact" {
	bulk EPOLL "$EP" 16000000
}
