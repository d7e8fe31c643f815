#!/usr/bin/env bats
# redis-cli with the shipped policies/redis-cli.conf against redis-server
# with TLS only (--port 0 --tls-port) on loopback.

load helpers/common

setup_file() {
	require_tool certtool python3 redis-server redis-cli
	export CERTS="$BATS_FILE_TMPDIR/certs"
	gen_certs "$CERTS"
	export TLSP=$(free_port) PLAIN=$(free_port)
	start_bg redis-server --bind 127.0.0.1 --port 0 --tls-port "$TLSP" \
		--tls-cert-file "$CERTS/srv.pem" --tls-key-file "$CERTS/srv.key" \
		--tls-ca-cert-file "$CERTS/ca.pem" --tls-auth-clients no \
		--save '' --appendonly no --dir "$BATS_FILE_TMPDIR" \
		>"$BATS_FILE_TMPDIR/redis.log" 2>&1
	wait_port "$TLSP"
	# The shipped file; only the ports and ca-file are rewritten.
	export POL="$BATS_FILE_TMPDIR/redis-cli.conf"
	derive_policy "$POLICIES/redis-cli.conf" "$POL" \
		-e "s/^match = 6379\$/match = $PLAIN/" \
		-e "s/^tls-port = 6380\$/tls-port = $TLSP/" \
		-e "s|^# ca-file = .*|ca-file = $CERTS/ca.pem|"
	grep -q "^match = $PLAIN\$" "$POL"
	grep -q "^tls-port = $TLSP\$" "$POL"
}

teardown_file() {
	stop_servers
}

@test "redis-cli: without tlsshim the TLS-only server is unreachable in plaintext" {
	run timeout 10 redis-cli -h 127.0.0.1 -p "$TLSP" PING
	[[ "$output" != *PONG* ]]
}

@test "redis-cli SET/GET over verified TLS with the shipped policy" {
	run timeout 20 "$TLSSHIM" -p "$POL" -l info redis-cli -h 127.0.0.1 -p "$PLAIN" SET tlsshim-key hello-redis
	[ "$status" -eq 0 ]
	[[ "$output" == *OK* ]]
	[[ "$output" == *"tlsshim: info: redis-cli: rule redis 127.0.0.1:$PLAIN (127.0.0.1): TLS1."*"verified"* ]]
	run timeout 20 "$TLSSHIM" -p "$POL" redis-cli -h 127.0.0.1 -p "$PLAIN" GET tlsshim-key
	[ "$status" -eq 0 ]
	[ "$output" = hello-redis ]
}

@test "redis-cli interactive (commands on stdin) over TLS" {
	run timeout 20 sh -c 'printf "PING\nINCR n\nINCR n\n" | "$1" -p "$2" redis-cli -h 127.0.0.1 -p "$3"' \
		sh "$TLSSHIM" "$POL" "$PLAIN"
	[ "$status" -eq 0 ]
	[[ "$output" == *PONG* ]]
	[[ "$output" == *2* ]]
}

@test "redis-cli picks the policy by program name from the policy directory" {
	mkdir "$BATS_TEST_TMPDIR/pol"
	cp "$POL" "$BATS_TEST_TMPDIR/pol/redis-cli.conf"
	TLSSHIM_POLICY= TLSSHIM_POLICY_DIR="$BATS_TEST_TMPDIR/pol" \
		run timeout 20 "$TLSSHIM" redis-cli -h 127.0.0.1 -p "$PLAIN" PING
	[ "$status" -eq 0 ]
	[ "$output" = PONG ]
}

@test "redis-cli with a CA that did not sign the server: refused, nothing sent" {
	gen_certs "$BATS_TEST_TMPDIR/other"
	sed "s|^ca-file = .*|ca-file = $BATS_TEST_TMPDIR/other/ca.pem|" "$POL" >"$BATS_TEST_TMPDIR/bad.conf"
	run timeout 20 "$TLSSHIM" -p "$BATS_TEST_TMPDIR/bad.conf" redis-cli -h 127.0.0.1 -p "$PLAIN" SET must-not-land x
	[[ "$output" == *"tlsshim: error: redis 127.0.0.1:$PLAIN (127.0.0.1): The certificate is NOT trusted"* ]]
	[[ "$output" == *"Connection refused"* ]]
	run timeout 20 "$TLSSHIM" -p "$POL" redis-cli -h 127.0.0.1 -p "$PLAIN" EXISTS must-not-land
	[ "$output" = 0 ]
}

@test "redis-cli: the shipped policy's default deny refuses a port it does not upgrade, and nothing reaches it" {
	start_recorder other
	local port
	port=$(cat "$BATS_FILE_TMPDIR/other.port")
	run timeout 20 "$TLSSHIM" -p "$POL" redis-cli -h 127.0.0.1 -p "$port" SET leak-key LEAK-MARK-REDIS
	[[ "$output" == *"tlsshim: error: unmatched 127.0.0.1:$port: refused: no rule matches and the policy says unmatched = refuse"* ]]
	[[ "$output" != *OK* ]]
	expect_recorded other LEAK-MARK-REDIS 0
}
