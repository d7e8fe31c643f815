#!/usr/bin/env bats
# libmemcached's tools with the shipped policies/memcached.conf against
# memcached -Z (Debian 12's memcached is built with TLS) on loopback.

load helpers/common

setup_file() {
	require_tool certtool python3 memcached memccp memccat
	memcached -h | grep -q -- '--enable-ssl' ||
		{ echo "this memcached has no TLS (-Z)" >&2; return 1; }
	export CERTS="$BATS_FILE_TMPDIR/certs"
	gen_certs "$CERTS"
	export TLSP=$(free_port) PLAIN=$(free_port)
	local user=()
	[ "$(id -u)" -eq 0 ] && user=(-u nobody)
	start_bg memcached "${user[@]}" -Z -o "ssl_chain_cert=$CERTS/srv.pem,ssl_key=$CERTS/srv.key" \
		-l 127.0.0.1 -p "$TLSP" -U 0 >"$BATS_FILE_TMPDIR/memcached.log" 2>&1
	wait_port "$TLSP"
	export POL="$BATS_FILE_TMPDIR/memcached.conf"
	derive_policy "$POLICIES/memcached.conf" "$POL" \
		-e "s/^match = 11211\$/match = $PLAIN/" \
		-e "s/^# tls-port = 11212\$/tls-port = $TLSP/" \
		-e "s|^# ca-file = .*|ca-file = $CERTS/ca.pem|"
	grep -q "^tls-port = $TLSP\$" "$POL"
}

teardown_file() {
	stop_servers
}

@test "memccp stores and memccat reads back over verified TLS" {
	cd "$BATS_TEST_TMPDIR"
	echo hello-memcached >item
	run timeout 20 "$TLSSHIM" -p "$POL" -l info memccp --servers="127.0.0.1:$PLAIN" item
	[ "$status" -eq 0 ]
	[[ "$output" == *"tlsshim: info: memccp: rule memcached 127.0.0.1:$PLAIN (127.0.0.1): TLS1."* ]]
	run timeout 20 "$TLSSHIM" -p "$POL" memccat --servers="127.0.0.1:$PLAIN" item
	[ "$status" -eq 0 ]
	[[ "$output" == *hello-memcached* ]]
}

@test "memccat against a server it cannot verify: refused, no plaintext" {
	gen_certs "$BATS_TEST_TMPDIR/other"
	sed "s|^ca-file = .*|ca-file = $BATS_TEST_TMPDIR/other/ca.pem|" "$POL" >"$BATS_TEST_TMPDIR/bad.conf"
	run timeout 20 "$TLSSHIM" -p "$BATS_TEST_TMPDIR/bad.conf" memccat --servers="127.0.0.1:$PLAIN" item
	[ "$status" -ne 0 ]
	[[ "$output" == *"tlsshim: error: memcached 127.0.0.1:$PLAIN (127.0.0.1): The certificate is NOT trusted"* ]]
}
