#!/usr/bin/env bats
# Server mode (issue 16), with the two C test servers (tests/server/):
# echo_thread (blocking, a thread per connection) and echo_epoll
# (non-blocking, edge-triggered epoll), each run unmodified under the
# launcher with an accept rule. Verdicts come from what the program
# recorded (getpeername, bytes and SHA-256 it read, how its greeting
# write and its reads ended) and from what a client received on the wire;
# the log lines are checked as well, never alone.

load server/helpers

GREET="HELLO-FROM-THE-PROGRAM"

setup_file() {
	srv_certs
	export TP=$(srv_free_port) TM=$(srv_free_port) OFF=$(srv_free_port)
	export TQ=$(srv_free_port) EP=$(srv_free_port) EQ=$(srv_free_port)
	export SP=$(srv_free_port) SE=$(srv_free_port) FP=$(srv_free_port)
	export P=$BATS_FILE_TMPDIR/p.conf
	{
		# Long enough that a pending handshake is still pending when a
		# test looks; the timeout test has a policy of its own.
		echo "handshake-timeout = 30"
		accept_rule c-thread "127.0.0.1:$TP"
		accept_rule c-mtls "127.0.0.1:$TM" \
			"client-ca = $CERTS/clients-ca.pem" "client-name = app1.internal"
		accept_rule c-quiet "127.0.0.1:$TQ, 127.0.0.1:$EQ"
		accept_rule c-epoll "[::1]:$EP"
		accept_rule c-prefork "127.0.0.1:$FP"
	} >"$P"
	export PS=$BATS_FILE_TMPDIR/slow.conf
	{
		echo "handshake-timeout = 2"
		accept_rule slow "$SP, $SE"
	} >"$PS"
	# OFF: a listener of the same program that no rule names.
	srv_c THREAD thread "$P" -P "$TP" -P "$TM" -P "$OFF" -g "$GREET" || true
	srv_c THREADQ thread "$P" -P "$TQ" || true
	srv_c EPOLL epoll "$P" -b ::1 -P "$EP" -g "$GREET" || true
	srv_c EPOLLQ epoll "$P" -P "$EQ" || true
	# A pre-fork server: two children accept on the parent's listener.
	srv_c PREFORK thread "$P" -P "$FP" -f 2 -g "$GREET" || true
	srv_c SLOWT thread "$PS" -P "$SP" -g "$GREET" || true
	srv_c SLOWE epoll "$PS" -P "$SE" -g "$GREET" || true
}

teardown_file() {
	stop_servers
}

# good NAME RULE HOST PORT [--greeting]: a TLS client (Python's ssl)
# talks to the server; the program saw it, by its real address, and read
# exactly what it sent; one info line, without client certificate.
good() {
	local name=$1 rule=$2 host=$3 port=$4 greet=${5:-} peer loc l sum
	srv_need "$name"
	tls_client talk "$port" --host "$host" ${greet:+--greeting "$GREET"} \
		--send "request-$name"
	[ "$(out result)" = ok ] || fail "the TLS client failed: $output"
	[ "$(out version)" = TLSv1.3 ] || fail "not TLS 1.3: $output"
	peer=$(out local)
	loc=$([[ $host == *:* ]] && echo "[$host]:$port" || echo "$host:$port")
	l=$(rec_wait "$name" "accept peer=$peer ") || fail "no accept of $peer"
	[ "$l" = "accept peer=$peer acc=$peer local=$loc" ] ||
		fail "getpeername/accept/getsockname are not the client's and the local address: $l (client: $peer)"
	l=$(rec_wait "$name" "close peer=$peer ") || fail "no end of $peer"
	sum=$(printf '%s' "request-$name" | sha256sum | cut -d' ' -f1)
	[ "$(field "$l" in)" = $((8 + ${#name})) ] ||
		fail "the program read other bytes than were sent: $l"
	[ "$(field "$l" sha256)" = "$sum" ] || fail "the program read other bytes than were sent: $l"
	local want=-
	[ -z "$greet" ] || want=ok
	[ "$(field "$l" greet)" = "$want" ] || fail "greeting: $l"
	[ "$(field "$l" end)" = eof ] || fail "end: $l"
	expect_verified "$name" "$rule" "$peer" "$loc" "no client certificate asked"
}

@test "thread server: a TLS client gets the greeting and the echo; getpeername, accept and getsockname give the real addresses" {
	good THREAD c-thread 127.0.0.1 "$TP" greeting
}

@test "thread server that reads first: a TLS client's request arrives whole" {
	good THREADQ c-quiet 127.0.0.1 "$TQ"
}

@test "epoll server over IPv6: greeting and echo; the program sees [::1] and the client's port" {
	good EPOLL c-epoll ::1 "$EP" greeting
}

@test "epoll server that reads first: a TLS client's request arrives whole" {
	good EPOLLQ c-quiet 127.0.0.1 "$EQ"
}

# plaintext NAME RULE HOST PORT [greeting]: a plaintext client is dropped:
# it receives not one byte of the program's (judged on what it received),
# the program reads 0 (EOF) and never sees the request, its greeting
# write fails with EPIPE, one error line.
plaintext() {
	local name=$1 rule=$2 host=$3 port=$4 greet=${5:-} peer loc
	srv_need "$name"
	raw_client "$port" --host "$host" --out "$BATS_TEST_TMPDIR/got" \
		--send $'GET /PLAINTEXT-REQUEST-MARK HTTP/1.0\r\n\r\n'
	[ "$status" -eq 0 ] || fail "$output"
	case $(out end) in
	eof|reset) ;;
	*) fail "the plaintext client was not dropped: $output" ;;
	esac
	no_plaintext_reply "$BATS_TEST_TMPDIR/got" "$GREET"
	no_plaintext_reply "$BATS_TEST_TMPDIR/got" PLAINTEXT-REQUEST-MARK
	peer=$(out local)
	loc=$([[ $host == *:* ]] && echo "[$host]:$port" || echo "$host:$port")
	expect_dropped "$name" "$peer" $greet
	expect_refused "$name" "$rule" "$peer" "$loc"
}

@test "thread server: a plaintext client is dropped; not one byte of the greeting on the wire; EPIPE, then EOF, in the program" {
	srv_need THREAD
	# The control: the same program on a port no rule names greets and
	# echoes in clear, and the client records it.
	raw_client "$OFF" --send "plain-on-unruled-port" --shut --out "$BATS_TEST_TMPDIR/off"
	[ "$(out end)" = eof ] || fail "$output"
	[ "$(cat "$BATS_TEST_TMPDIR/off")" = "${GREET}plain-on-unruled-port" ] ||
		fail "a listener no rule names is not left alone: $(od -c "$BATS_TEST_TMPDIR/off" | head -n 3)"
	plaintext THREAD c-thread 127.0.0.1 "$TP" greeting
}

@test "thread server that reads first: a plaintext request never reaches the program" {
	plaintext THREADQ c-quiet 127.0.0.1 "$TQ"
}

@test "epoll server (IPv6): a plaintext client is dropped; nothing on the wire; EPIPE, then EOF, in the program" {
	plaintext EPOLL c-epoll ::1 "$EP" greeting
}

@test "epoll server that reads first: a plaintext request never reaches the program" {
	plaintext EPOLLQ c-quiet 127.0.0.1 "$EQ"
}

@test "pre-fork server (children accept on the parent's listener): TLS clients are served, a plaintext one dropped" {
	local i
	for i in 1 2 3 4; do
		good PREFORK c-prefork 127.0.0.1 "$FP" greeting
	done
	plaintext PREFORK c-prefork 127.0.0.1 "$FP" greeting
}

# timeout NAME PORT: a client that connects and never sends a
# ClientHello is dropped once handshake-timeout (2 s) has passed since
# accept(): it sees the connection end having received nothing.
timeout_drop() {
	local name=$1 port=$2 peer
	srv_need "$name"
	raw_client "$port" --idle 20 --out "$BATS_TEST_TMPDIR/got"
	case $(out end) in
	eof|reset) ;;
	*) fail "a silent client was not dropped within 20 s (handshake-timeout = 2): $output" ;;
	esac
	[ "$(out received)" = 0 ] || no_plaintext_reply "$BATS_TEST_TMPDIR/got" "$GREET"
	peer=$(out local)
	expect_dropped "$name" "$peer" greeting
	expect_refused "$name" slow "$peer" "127.0.0.1:$port"
}

@test "thread server: a client that never sends a ClientHello is dropped after handshake-timeout; the blocked greeting write fails with EPIPE" {
	timeout_drop SLOWT "$SP"
}

@test "epoll server: a client that never sends a ClientHello is dropped after handshake-timeout, the program woken for it" {
	timeout_drop SLOWE "$SE"
}

# first_silent NAME HOST PORT: a client that connects and says nothing
# does not hold up the accept loop: a second, TLS client is accepted and
# served while the first is still pending (not dropped, not timed out).
first_silent() {
	local name=$1 host=$2 port=$3 go=$BATS_TEST_TMPDIR/go silent
	srv_need "$name"
	timeout 60 python3 "$SRV/rawclient.py" "$port" --host "$host" \
		--hold-until "$go" >"$BATS_TEST_TMPDIR/silent" &
	local pid=$!
	for _ in $(seq 100); do
		silent=$(field "$(head -n 1 "$BATS_TEST_TMPDIR/silent")" local)
		[ -n "$silent" ] && break
		sleep 0.1
	done
	[ -n "$silent" ] || fail "the silent client did not connect"
	rec_wait "$name" "accept peer=$silent " >/dev/null ||
		fail "accept() did not return the silent client's connection: the handshake must not run inside accept()"
	tls_client talk "$port" --host "$host" --greeting "$GREET" --send second
	local r=$output
	touch "$go"
	wait "$pid" || true
	[ "$(field "$r" result)" = ok ] || fail "the second client was not served while the first was silent: $r"
	run tail -n 1 "$BATS_TEST_TMPDIR/silent"
	[ "$(out end)" = pending ] ||
		fail "the silent client was no longer pending when the second was done: $output"
	[ "$(out received)" = 0 ] || fail "the silent client received bytes: $output"
}

@test "thread server: the handshake never runs inside accept(): a silent first client does not stall a second" {
	first_silent THREAD 127.0.0.1 "$TP"
}

@test "epoll server: a silent client does not stall the event loop" {
	first_silent EPOLL ::1 "$EP"
}

@test "both ends under tlsshim: a plain client under a match rule with client-cert, a plain server under an accept rule with client-ca" {
	srv_need THREAD
	local c=$BATS_TEST_TMPDIR/client.conf peer
	client_rule "$c" to-thread "$TM"
	run timeout 30 env ${TLSSHIM_SAN_PRELOAD:+LD_PRELOAD="$TLSSHIM_SAN_PRELOAD"} \
		"$TLSSHIM" -l info -p "$c" -- python3 "$SRV/rawclient.py" "$TM" \
		--send both-ends-plain --shut --out "$BATS_TEST_TMPDIR/got"
	[ "$(out end)" = eof ] || fail "$output"
	[ "$(cat "$BATS_TEST_TMPDIR/got")" = "${GREET}both-ends-plain" ] ||
		fail "the plain client did not get the greeting and its echo: $(od -c "$BATS_TEST_TMPDIR/got" | head -n 3)"
	[[ $output == *"rule to-thread 127.0.0.1:$TM (127.0.0.1): TLS1.3 "*", verified"* ]] ||
		fail "the client side did not verify the server: $output"
	# The client's own getsockname (through its tlsshim) is what the
	# server's getpeername gave.
	peer=$(out local)
	[ "$(field "$(rec_wait THREAD "close peer=$peer ")" in)" = 15 ] ||
		fail "the server did not record $peer: $(tail -n 3 "$BATS_FILE_TMPDIR/THREAD.rec")"
	expect_verified THREAD c-mtls "$peer" "127.0.0.1:$TM" "client verified (app1.internal)"
}

@test "both ends under tlsshim: the same plain client without a client certificate is dropped by the server" {
	srv_need THREAD
	local c=$BATS_TEST_TMPDIR/client.conf n l
	cat >"$c" <<-EOF
	[to-thread]
	match = 127.0.0.1:$TM
	ca-file = $CERTS/ca.pem
	EOF
	n=$(rec_count THREAD " local=127.0.0.1:$TM greet=")
	run timeout 30 env ${TLSSHIM_SAN_PRELOAD:+LD_PRELOAD="$TLSSHIM_SAN_PRELOAD"} \
		"$TLSSHIM" -p "$c" -- python3 "$SRV/rawclient.py" "$TM" \
		--send NO-CERT-MARK --shut --out "$BATS_TEST_TMPDIR/got"
	# In TLS 1.3 the client may finish its handshake before the server
	# judges its (missing) certificate: its connect succeeds or fails,
	# but it never receives a byte.
	[ "$(out received)" = 0 ] ||
		fail "a client without a certificate received the program's bytes: $output"
	l=$(rec_next THREAD " local=127.0.0.1:$TM greet=" "$n") ||
		fail "the server recorded no end of the connection"
	expect_dropped THREAD "$(field "$l" peer)" greeting
	expect_refused THREAD c-mtls "$(field "$l" peer)" "127.0.0.1:$TM"
}
