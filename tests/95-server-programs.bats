#!/usr/bin/env bats
# Server mode (issue 16) with real, unmodified servers run under the
# launcher with an accept rule - redis-server with its own TLS off,
# memcached, python3 -m http.server, a node net server - and real clients:
# redis-cli --tls, openssl s_client, curl https://, Python's ssl, and
# tlsshim's own client rules (a plain client under a match rule talking
# to a plain server under an accept rule). A plaintext client is judged
# by what it received and by what the server did with its request (a
# key it tried to set does not exist; the request is not in the log).

load server/helpers

GREET="HELLO-FROM-NODE"

setup_file() {
	require_tool redis-server redis-cli memcached python3 node curl openssl
	srv_certs
	export RP=$(srv_free_port) MP=$(srv_free_port) HP=$(srv_free_port) NP=$(srv_free_port)
	export P=$BATS_FILE_TMPDIR/p.conf
	local mtls=("client-ca = $CERTS/clients-ca.pem" "client-name = app1.internal")
	{
		accept_rule redis-in "127.0.0.1:$RP" "${mtls[@]}"
		accept_rule memcached-in "127.0.0.1:$MP"
		accept_rule http-in "127.0.0.1:$HP"
		accept_rule node-in "127.0.0.1:$NP" "${mtls[@]}"
	} >"$P"
	srv_run REDIS "$P" redis-server --bind 127.0.0.1 --port "$RP" \
		--save '' --appendonly no --dir "$BATS_FILE_TMPDIR"
	# As root, memcached drops to nobody: the key (mode 600, root's) must
	# have been read before.
	local user=()
	[ "$(id -u)" -ne 0 ] || user=(-u nobody)
	srv_run MEMCACHED "$P" memcached "${user[@]}" -l 127.0.0.1 -p "$MP" -U 0
	mkdir -p "$BATS_FILE_TMPDIR/www"
	echo "hello from http.server" >"$BATS_FILE_TMPDIR/www/hello.txt"
	srv_run HTTP "$P" python3 -m http.server "$HP" --bind 127.0.0.1 \
		--directory "$BATS_FILE_TMPDIR/www"
	srv_run NODE "$P" node "$SRV/echo_node.js" "$NP" 127.0.0.1 \
		"$BATS_FILE_TMPDIR/NODE.rec" "$BATS_FILE_TMPDIR/NODE.port" "$GREET"
	srv_wait REDIS listening "$RP" || true
	srv_wait MEMCACHED listening "$MP" || true
	srv_wait HTTP listening "$HP" || true
	srv_wait NODE test -s "$BATS_FILE_TMPDIR/NODE.port" || true
}

teardown_file() {
	stop_servers
}

rcli() { # ARGS...: redis-cli --tls with app1's certificate
	run timeout 20 redis-cli --tls --cacert "$CERTS/ca.pem" \
		--cert "$CERTS/app1.pem" --key "$CERTS/app1.key" \
		-h 127.0.0.1 -p "$RP" "$@"
}

@test "redis-server: redis-cli --tls with a client certificate SETs and GETs" {
	srv_need REDIS
	rcli SET tls-key hello-redis
	[ "$output" = OK ] || fail "$output"
	rcli GET tls-key
	[ "$output" = hello-redis ] || fail "$output"
	log_wait REDIS "client verified (app1.internal)" ||
		fail "no verified-client line: $(tail -n 5 "$BATS_FILE_TMPDIR/REDIS.log")"
}

@test "redis-server: CLIENT INFO shows the real client address (its own getsockname), not a proxy's" {
	srv_need REDIS
	local r=$BATS_TEST_TMPDIR/reply peer
	tls_client talk "$RP" --cert "$CERTS/app1.pem" --key "$CERTS/app1.key" \
		--send $'CLIENT INFO\r\n' --until " fd=" --reply-out "$r"
	[ "$(out result)" = ok ] || fail "$output"
	peer=$(out local)
	grep -q " addr=$peer laddr=127.0.0.1:$RP " "$r" ||
		fail "redis saw another peer than $peer: $(cat "$r")"
	expect_verified REDIS redis-in "$peer" "127.0.0.1:$RP" "client verified (app1.internal)"
}

@test "redis-server: plaintext clients are dropped; their SETs never happen and not a byte of a reply reaches them" {
	srv_need REDIS
	run timeout 20 redis-cli -h 127.0.0.1 -p "$RP" SET leak-1 PLAIN-MARK
	[[ $output != *OK* ]] || fail "plaintext redis-cli was answered: $output"
	raw_client "$RP" --send $'SET leak-2 PLAIN-MARK\r\nPING\r\n' --out "$BATS_TEST_TMPDIR/got"
	case $(out end) in eof|reset) ;; *) fail "not dropped: $output" ;; esac
	no_plaintext_reply "$BATS_TEST_TMPDIR/got" "+OK"
	no_plaintext_reply "$BATS_TEST_TMPDIR/got" "+PONG"
	expect_refused REDIS redis-in "$(out local)" "127.0.0.1:$RP"
	rcli EXISTS leak-1 leak-2
	[ "$output" = 0 ] || fail "a plaintext SET reached redis: EXISTS = $output"
}

@test "redis-server: redis-cli --tls without a client certificate is dropped, its SET never happens" {
	srv_need REDIS
	run timeout 20 redis-cli --tls --cacert "$CERTS/ca.pem" -h 127.0.0.1 \
		-p "$RP" SET no-cert-key x
	[[ $output != OK ]] || fail "served without a client certificate: $output"
	rcli EXISTS no-cert-key
	[ "$output" = 0 ] || fail "EXISTS = $output"
}

@test "both ends under tlsshim: plain redis-cli under a match rule with client-cert, redis-server under an accept rule" {
	srv_need REDIS
	local c=$BATS_TEST_TMPDIR/client.conf
	client_rule "$c" redis-out "$RP"
	run timeout 20 "$TLSSHIM" -l info -p "$c" -- redis-cli -h 127.0.0.1 -p "$RP" SET both-ends yes
	[[ $output == *OK* ]] || fail "$output"
	[[ $output == *"rule redis-out 127.0.0.1:$RP (127.0.0.1): TLS1.3 "*", verified"* ]] ||
		fail "the client side did not verify: $output"
	rcli GET both-ends
	[ "$output" = yes ] || fail "$output"
}

@test "memcached: openssl s_client stores and reads back an item" {
	srv_need MEMCACHED
	run timeout 20 sh -c 'printf "set k 0 0 5\r\nhello\r\nget k\r\nquit\r\n" |
		openssl s_client -quiet -connect "127.0.0.1:$1" -CAfile "$2" \
		-verify_return_error 2>/dev/null' sh "$MP" "$CERTS/ca.pem"
	[[ $output == *STORED* ]] || fail "$output"
	[[ $output == *"VALUE k 0 5"*hello* ]] || fail "$output"
	log_wait MEMCACHED "no client certificate asked" || fail "no info line"
}

@test "memcached: a plaintext set never happens and gets no reply" {
	srv_need MEMCACHED
	raw_client "$MP" --send $'set leak 0 0 10\r\nPLAIN-MARK\r\n' --out "$BATS_TEST_TMPDIR/got"
	case $(out end) in eof|reset) ;; *) fail "not dropped: $output" ;; esac
	no_plaintext_reply "$BATS_TEST_TMPDIR/got" STORED
	expect_refused MEMCACHED memcached-in "$(out local)" "127.0.0.1:$MP"
	tls_client talk "$MP" --send $'get leak\r\n' --until $'END\r\n' \
		--reply-out "$BATS_TEST_TMPDIR/reply"
	[ "$(out result)" = ok ] || fail "$output"
	[ "$(cat "$BATS_TEST_TMPDIR/reply")" = $'END\r' ] ||
		fail "the plaintext set reached memcached: $(cat "$BATS_TEST_TMPDIR/reply")"
}

@test "python3 -m http.server: curl https:// gets the file" {
	srv_need HTTP
	run timeout 20 curl -sS --cacert "$CERTS/ca.pem" "https://127.0.0.1:$HP/hello.txt"
	[ "$status" -eq 0 ] || fail "$output"
	[ "$output" = "hello from http.server" ] || fail "$output"
}

@test "python3 -m http.server: curl http:// gets nothing and its request never reaches the server" {
	srv_need HTTP
	run timeout 20 curl -sS "http://127.0.0.1:$HP/PLAIN-MARK-CURL"
	[ "$status" -ne 0 ] || fail "plaintext curl got an answer: $output"
	[[ $output != *"hello"* && $output != *"404"* ]] || fail "$output"
	raw_client "$HP" --send $'GET /PLAIN-MARK-RAW HTTP/1.0\r\n\r\n' --out "$BATS_TEST_TMPDIR/got"
	case $(out end) in eof|reset) ;; *) fail "not dropped: $output" ;; esac
	no_plaintext_reply "$BATS_TEST_TMPDIR/got" HTTP/
	expect_refused HTTP http-in "$(out local)" "127.0.0.1:$HP"
	! grep -q PLAIN-MARK "$BATS_FILE_TMPDIR/HTTP.log" ||
		fail "http.server saw a plaintext request: $(grep PLAIN-MARK "$BATS_FILE_TMPDIR/HTTP.log")"
}

@test "both ends under tlsshim: plain curl http:// under a match rule, http.server under an accept rule" {
	srv_need HTTP
	local c=$BATS_TEST_TMPDIR/client.conf
	printf '[http-out]\nmatch = 127.0.0.1:%s\nca-file = %s\n' "$HP" "$CERTS/ca.pem" >"$c"
	run timeout 20 "$TLSSHIM" -p "$c" -- curl -sS "http://127.0.0.1:$HP/hello.txt"
	[ "$status" -eq 0 ] || fail "$output"
	[ "$output" = "hello from http.server" ] || fail "$output"
}

@test "node net server: Python's ssl with app1 gets the greeting and the echo; node's remoteAddress is the client's own address" {
	srv_need NODE
	local peer l
	tls_client talk "$NP" --greeting "$GREET" --send from-python \
		--cert "$CERTS/app1.pem" --key "$CERTS/app1.key"
	[ "$(out result)" = ok ] || fail "$output"
	peer=$(out local)
	l=$(rec_wait NODE "close peer=$peer ") || fail "node did not see $peer"
	[ "$(field "$l" in)" = 11 ] && [ "$(field "$l" greet)" = ok ] || fail "$l"
	expect_verified NODE node-in "$peer" "127.0.0.1:$NP" "client verified (app1.internal)"
}

@test "node net server: plaintext and certificate-less clients are dropped; node reads nothing of them" {
	srv_need NODE
	local peer l
	raw_client "$NP" --send PLAIN-MARK-NODE --out "$BATS_TEST_TMPDIR/got"
	case $(out end) in eof|reset) ;; *) fail "not dropped: $output" ;; esac
	no_plaintext_reply "$BATS_TEST_TMPDIR/got" "$GREET"
	peer=$(out local)
	l=$(rec_wait NODE "close peer=$peer ") || fail "node did not see $peer end"
	[ "$(field "$l" in)" = 0 ] && [ "$(field "$l" greet)" != ok ] || fail "$l"
	expect_refused NODE node-in "$peer" "127.0.0.1:$NP"
	tls_client talk "$NP" --greeting "$GREET" --send NO-CERT-MARK
	[ "$(out app)" = 0 ] || fail "a client without a certificate received data: $output"
	peer=$(out local)
	l=$(rec_wait NODE "close peer=$peer ") || fail "node did not see $peer end"
	[ "$(field "$l" in)" = 0 ] && [ "$(field "$l" greet)" != ok ] || fail "$l"
	expect_refused NODE node-in "$peer" "127.0.0.1:$NP"
}
