#!/usr/bin/env bats
# Server mode (issue 16): accept rules in the policy. `tlsshim --check`
# takes them (beside client rules in the same file) and reports a bad one
# as path:line:col; `tlsshim --explain POLICY :PORT` says what a server
# listening on PORT gets; a server whose policy is bad never runs in
# plaintext (judged by what a plaintext client received).

load server/helpers

GREET="HELLO-FROM-THE-PROGRAM"

setup_file() {
	srv_certs
}

teardown_file() {
	stop_servers
}

check_ok() {
	run timeout 10 "$TLSSHIM" --check "$1"
	[ "$status" -eq 0 ] && [ -z "$output" ] ||
		fail "--check refused a valid policy ($status): $output"
}

# check_error FILE LINES WORD...: --check fails, and says so in a line
# FILE:L:COL: ... with L one of LINES, holding every WORD.
check_error() {
	local f=$1 want=$2 l n w ok=
	shift 2
	run timeout 10 "$TLSSHIM" --check "$f"
	[ "$status" -eq 1 ] || fail "--check exit $status (want 1): $output"
	while IFS= read -r l; do
		for n in $want; do
			[[ $l == "$f:$n:"[0-9]*": "* ]] || continue
			for w in "$@"; do
				[[ $l == *"$w"* ]] || continue 2
			done
			ok=1
		done
	done <<<"$output"
	[ -n "$ok" ] || fail "no '$f:{$want}:COL: ...' naming '$*' in: $output"
}

@test "--check takes accept rules of every form beside client rules, with every server key" {
	local f=$BATS_TEST_TMPDIR/p.conf
	cat >"$f" <<-EOF
	handshake-timeout = 5

	[redis-out]
	match = 127.0.0.1:6380
	ca-file = $CERTS/ca.pem

	[redis-in]
	accept = 6379
	cert = $CERTS/good.pem
	key = $CERTS/good.key
	client-ca = $CERTS/clients-ca.pem
	client-name = app1.internal, *.svc.internal, spiffe://test/app2
	client-pin-sha256 = $(cat "$CERTS/app1.pin")
	client-pin-sha256 = $(cat "$CERTS/app1b.pin")
	alpn = redis
	min-version = 1.2
	max-version = 1.3

	[many]
	accept = 7000-7010, 127.0.0.1:7100, [::1]:7200, 10.0.0.0/8:7300
	cert = $CERTS/good.pem
	key = $CERTS/good.key
	EOF
	check_ok "$f"
}

@test "--check: an accept rule without cert is an error at the rule" {
	local f=$BATS_TEST_TMPDIR/p.conf
	accept_rule in 6379 >"$f"
	check_ok "$f"
	printf '[in]\naccept = 6379\nkey = %s\n' "$CERTS/good.key" >"$f"
	check_error "$f" 1 cert
}

@test "--check: an accept rule without key is an error at the rule" {
	local f=$BATS_TEST_TMPDIR/p.conf
	printf '# server\n[in]\naccept = 6379\ncert = %s\n' "$CERTS/good.pem" >"$f"
	check_error "$f" 2 key
	printf 'key = %s\n' "$CERTS/good.key" >>"$f"
	check_ok "$f"
}

@test "--check: a rule with both match and accept is an error" {
	local f=$BATS_TEST_TMPDIR/p.conf
	{ accept_rule both 6379; printf 'match = 6379\n'; } >"$f"
	check_error "$f" "1 2 5" match accept
}

@test "--check: client-name or client-pin-sha256 without client-ca is an error" {
	local f=$BATS_TEST_TMPDIR/p.conf
	{ accept_rule in 6379; printf 'client-ca = %s\nclient-name = app1.internal\n' "$CERTS/clients-ca.pem"; } >"$f"
	check_ok "$f"
	{ accept_rule in 6379; printf 'client-name = app1.internal\n'; } >"$f"
	check_error "$f" "1 5" client-name client-ca
	{ accept_rule in 6379; printf 'client-pin-sha256 = %s\n' "$(cat "$CERTS/app1.pin")"; } >"$f"
	check_error "$f" "1 5" client-pin-sha256 client-ca
}

@test "--check: an unreadable cert, key or client-ca is an error at its line" {
	local f=$BATS_TEST_TMPDIR/p.conf
	printf '[in]\naccept = 6379\ncert = %s\nkey = %s\n' "$BATS_TEST_TMPDIR/none.pem" "$CERTS/good.key" >"$f"
	check_error "$f" 3 none.pem
	printf '[in]\naccept = 6379\ncert = %s\nkey = %s\n' "$CERTS/good.pem" "$BATS_TEST_TMPDIR/none.key" >"$f"
	check_error "$f" 4 none.key
	{ accept_rule in 6379; printf 'client-ca = %s\n' "$BATS_TEST_TMPDIR/none-ca.pem"; } >"$f"
	check_error "$f" 5 none-ca.pem
}

@test "--check: a certificate and a key that are not a pair are refused, naming the rule" {
	local f=$BATS_TEST_TMPDIR/p.conf
	printf '[in]\naccept = 6379\ncert = %s\nkey = %s\n' "$CERTS/server2.pem" "$CERTS/server2.key" >"$f"
	check_ok "$f"
	printf '[in]\naccept = 6379\ncert = %s\nkey = %s\n' "$CERTS/good.pem" "$CERTS/server2.key" >"$f"
	run timeout 10 "$TLSSHIM" --check "$f"
	[ "$status" -eq 1 ] || fail "a mismatched pair passed --check: $output"
	[[ $output == "$f:"[0-9]* ]] || fail "not a path:line error: $output"
}

@test "--check: an accept entry that names a host is an error (a listener has an address, not a name)" {
	local f=$BATS_TEST_TMPDIR/p.conf
	accept_rule in 6379 >"$f"
	check_ok "$f"
	accept_rule in db.internal:6379 >"$f"
	check_error "$f" 2 db.internal
}

@test "--check: trust keys of the wrong side are errors, never a silent no-op (ca-file in an accept rule, client-ca in a match rule)" {
	local f=$BATS_TEST_TMPDIR/p.conf
	{ accept_rule in 6379; printf 'ca-file = %s\n' "$CERTS/clients-ca.pem"; } >"$f"
	check_error "$f" "1 5" ca-file
	printf '[out]\nmatch = 6379\nca-file = %s\nclient-ca = %s\n' "$CERTS/ca.pem" "$CERTS/clients-ca.pem" >"$f"
	check_error "$f" "1 4" client-ca
}

@test "--explain POLICY :PORT: the accept rule, its certificate and what it asks of clients" {
	local f=$BATS_TEST_TMPDIR/p.conf pin
	pin=$(cat "$CERTS/app1.pin")
	cat >"$f" <<-EOF
	[redis-out]
	match = 6379
	ca-file = $CERTS/ca.pem

	[redis-in]
	accept = 6379
	cert = $CERTS/good.pem
	key = $CERTS/good.key
	client-ca = $CERTS/clients-ca.pem
	client-name = app1.internal, *.svc.internal
	client-pin-sha256 = $pin
	alpn = redis
	EOF
	run timeout 10 "$TLSSHIM" --explain "$f" :6379
	[ "$status" -eq 0 ] || fail "exit $status: $output"
	for w in "[redis-in]" "line 5" "$CERTS/good.pem" "$CERTS/clients-ca.pem" \
		app1.internal "*.svc.internal" "$pin" redis; do
		[[ $output == *"$w"* ]] || fail "--explain :6379 does not show '$w': $output"
	done
	run timeout 10 "$TLSSHIM" --explain "$f" :6380
	[ "$status" -eq 0 ] || fail "exit $status: $output"
	[[ $output != *"redis-in"* ]] || fail "a port no accept rule names was explained as redis-in: $output"
}

# greeted PORT: what a plaintext client received from a greeting server.
greeted() {
	raw_client "$1" --idle 3 --out "$BATS_TEST_TMPDIR/got"
}

@test "the launcher refuses to start a server whose accept rule is bad; fixed, the server runs with TLS only" {
	local f=$BATS_TEST_TMPDIR/p.conf port
	port=$(srv_free_port)
	printf '[in]\naccept = 127.0.0.1:%s\ncert = %s\n' "$port" "$CERTS/good.pem" >"$f"
	run timeout 10 env ${TLSSHIM_SAN_PRELOAD:+LD_PRELOAD="$TLSSHIM_SAN_PRELOAD"} \
		"$TLSSHIM" -p "$f" -- "$SRVBIN/echo_thread" -P "$port" -g "$GREET" \
		-r "$BATS_TEST_TMPDIR/rec" -t 5
	[ "$status" -eq 2 ] || fail "exit $status: $output"
	[[ $output == *"$f:1:"* ]] || fail "$output"
	! listening "$port" || fail "the server runs although its policy is bad"
	printf 'key = %s\n' "$CERTS/good.key" >>"$f"
	srv_c FIXED thread "$f" -P "$port" -g "$GREET" -t 60 ||
		fail "the server did not start: $(cat "$BATS_FILE_TMPDIR/FIXED.log")"
	tls_client talk "$port" --greeting "$GREET"
	[ "$(out result)" = ok ] || fail "$output"
	greeted "$port"
	no_plaintext_reply "$BATS_TEST_TMPDIR/got" "$GREET"
}

@test "a server preloaded with a bad or missing policy (no launcher check) fails closed: no plaintext client gets a byte, nor the program one of its" {
	local f=$BATS_TEST_TMPDIR/p.conf port pol i=0 rec l
	printf '[in]\naccept = 6379\ncert = %s\n' "$CERTS/good.pem" >"$f"
	for pol in "$f" "$BATS_TEST_TMPDIR/missing.conf"; do
		i=$((i + 1))
		port=$(srv_free_port)
		rec=$BATS_TEST_TMPDIR/rec$i
		rm -f "$BATS_TEST_TMPDIR/port"
		# -w: the client's request is queued in the kernel before
		# accept() returns (Linux keeps it readable after SHUT_RD).
		env LD_PRELOAD="$LIB" TLSSHIM_POLICY="$pol" "$SRVBIN/echo_thread" \
			-P "$port" -p "$BATS_TEST_TMPDIR/port" -g "$GREET" \
			-r "$rec" -t 30 -w 500 3>&- \
			2>>"$BATS_TEST_TMPDIR/log$i" &
		echo $! >>"$BATS_FILE_TMPDIR/pids"
		wait_port_file "$BATS_TEST_TMPDIR/port" || fail "the server did not start: $(cat "$BATS_TEST_TMPDIR/log$i")"
		raw_client "$port" --send "PLAINTEXT-REQUEST" --idle 3 \
			--out "$BATS_TEST_TMPDIR/got"
		no_plaintext_reply "$BATS_TEST_TMPDIR/got" "$GREET"
		[[ $(out end) == eof || $(out end) == reset ]] ||
			fail "policy $pol: a plaintext client was left hanging: $output"
		l=$(rec_wait_file "$rec" "close ") || fail "policy $pol: the program recorded no end of the connection"
		[ "$(field "$l" in)" = 0 ] ||
			fail "policy $pol: the program read the plaintext client's request: $l"
		[ "$(field "$l" out)" = 0 ] || fail "policy $pol: $l"
	done
}

@test "accept = 0.0.0.0:PORT and [::]:PORT (a listener on any address) serve TLS on every local address, never plaintext" {
	local f=$BATS_TEST_TMPDIR/any.conf p4 p6 p
	p4=$(srv_free_port) p6=$(srv_free_port)
	{
		accept_rule any4 "0.0.0.0:$p4"
		accept_rule any6 "[::]:$p6"
	} >"$f"
	run timeout 10 "$TLSSHIM" --check "$f"
	[ "$status" -eq 0 ] || fail "$output"
	srv_c ANY thread "$f" -P "$p4" -P "$p6" -g "$GREET" -t 60 ||
		fail "the server did not start: $(cat "$BATS_FILE_TMPDIR/ANY.log")"
	for p in "$p4" "$p6"; do
		tls_client talk "$p" --greeting "$GREET"
		[ "$(out result)" = ok ] || fail "port $p: $output"
		greeted "$p"
		no_plaintext_reply "$BATS_TEST_TMPDIR/got" "$GREET"
	done
}
