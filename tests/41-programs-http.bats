#!/usr/bin/env bats
# curl and wget with the shipped policies/curl.conf and wget.conf: http://
# to a TLS-only HTTP server on loopback (tls-port).

load helpers/common

setup_file() {
	require_tool certtool python3 curl wget
	export CERTS="$BATS_FILE_TMPDIR/certs"
	gen_certs "$CERTS"
	start_tls_server "$CERTS" "$BATS_FILE_TMPDIR/port" srv
	start_tls_server "$CERTS" "$BATS_FILE_TMPDIR/wrong.port" wrong
	export TLSP=$(cat "$BATS_FILE_TMPDIR/port") WRONGP=$(cat "$BATS_FILE_TMPDIR/wrong.port")
	export PLAIN=$(free_port)
	for p in curl wget; do
		derive_policy "$POLICIES/$p.conf" "$BATS_FILE_TMPDIR/$p.conf" \
			-e "s/^match = 80\$/match = $PLAIN/" \
			-e "s/^tls-port = 443\$/tls-port = $TLSP/" \
			-e "s|^# ca-file = .*|ca-file = $CERTS/ca.pem|"
		grep -q "^tls-port = $TLSP\$" "$BATS_FILE_TMPDIR/$p.conf"
	done
}

teardown_file() {
	stop_servers
}

@test "curl http:// reaches the TLS server through the shipped curl.conf" {
	run timeout 20 "$TLSSHIM" -p "$BATS_FILE_TMPDIR/curl.conf" -l info curl -sS "http://127.0.0.1:$PLAIN/index"
	[ "$status" -eq 0 ]
	[[ "$output" == *"hello over tls"* ]]
	[[ "$output" == *"tlsshim: info: curl: rule http 127.0.0.1:$PLAIN (127.0.0.1): TLS1."* ]]
}

@test "wget http:// reaches the TLS server through the shipped wget.conf" {
	run timeout 20 "$TLSSHIM" -p "$BATS_FILE_TMPDIR/wget.conf" -l info wget -qO- "http://127.0.0.1:$PLAIN/index"
	[ "$status" -eq 0 ]
	[[ "$output" == *"hello over tls"* ]]
	[[ "$output" == *"tlsshim: info: wget: rule http 127.0.0.1:$PLAIN (127.0.0.1): TLS1."* ]]
}

@test "curl and wget: a server with the wrong certificate is refused with GnuTLS's reason" {
	sed "s/^tls-port = .*/tls-port = $WRONGP/" "$BATS_FILE_TMPDIR/curl.conf" >"$BATS_TEST_TMPDIR/w.conf"
	run timeout 20 "$TLSSHIM" -p "$BATS_TEST_TMPDIR/w.conf" curl -sS "http://127.0.0.1:$PLAIN/"
	[ "$status" -eq 7 ]
	[[ "$output" == *"tlsshim: error: http 127.0.0.1:$PLAIN (127.0.0.1): The certificate is NOT trusted. The name in the certificate does not match the expected."* ]]
	[[ "$output" != *"hello over tls"* ]]
	run timeout 20 "$TLSSHIM" -p "$BATS_TEST_TMPDIR/w.conf" wget -qO- --tries=1 "http://127.0.0.1:$PLAIN/"
	[ "$status" -ne 0 ]
	[[ "$output" == *"tlsshim: error: http"* ]]
}
