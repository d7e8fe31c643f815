#!/usr/bin/env bats
# Server mode (issue 16): client certificates. The unmodified C servers
# (tests/server/) listen on one port per rule:
#   need   client-ca only: any client certificate of clients-ca
#   names  client-ca + client-name = app1.internal, *.svc.internal,
#          spiffe://test/app2
#   pins   client-ca + client-pin-sha256 = app1's key
#   open   no client-ca: no client certificate asked
# Each client (Python's ssl, openssl s_client) is judged by what it
# received (a refused one gets not one byte of the greeting) and by what
# the program recorded (it read nothing of a refused client, its greeting
# write failed with EPIPE, its read returned 0), then by the log line.

load server/helpers

GREET="HELLO-FROM-THE-PROGRAM"

setup_file() {
	srv_certs
	local kind name
	for kind in thread epoll; do
		name=$(echo "$kind" | tr a-z A-Z)
		local need names pins open
		need=$(srv_free_port) names=$(srv_free_port)
		pins=$(srv_free_port) open=$(srv_free_port)
		eval "export ${name}_NEED=$need ${name}_NAMES=$names ${name}_PINS=$pins ${name}_OPEN=$open"
		{
			accept_rule need "127.0.0.1:$need" \
				"client-ca = $CERTS/clients-ca.pem"
			accept_rule names "127.0.0.1:$names" \
				"client-ca = $CERTS/clients-ca.pem" \
				"client-name = app1.internal, *.svc.internal, spiffe://test/app2"
			accept_rule pins "127.0.0.1:$pins" \
				"client-ca = $CERTS/clients-ca.pem" \
				"client-pin-sha256 = $(cat "$CERTS/app1.pin")"
			accept_rule open "127.0.0.1:$open"
		} >"$BATS_FILE_TMPDIR/$kind.conf"
		srv_c "$name" "$kind" "$BATS_FILE_TMPDIR/$kind.conf" -P "$need" \
			-P "$names" -P "$pins" -P "$open" -g "$GREET" || true
	done
}

teardown_file() {
	stop_servers
}

port_of() { # SERVER RULE
	local v="${1}_$(echo "$2" | tr a-z A-Z)"
	echo "${!v}"
}

# accepted SERVER RULE CLIENT HOW: the client with certificate CLIENT
# ("" for none) is served: greeting, echo, the program read its bytes;
# the info line ends in HOW.
accepted() {
	local srv=$1 rule=$2 client=$3 how=$4 port peer l
	srv_need "$srv"
	port=$(port_of "$srv" "$rule")
	tls_client talk "$port" --greeting "$GREET" --send "from-$client" \
		${client:+--cert "$CERTS/$client.pem" --key "$CERTS/$client.key"}
	[ "$(out result)" = ok ] || fail "client '$client' was not served by rule $rule: $output"
	peer=$(out local)
	l=$(rec_wait "$srv" "close peer=$peer ") || fail "no record of $peer"
	[ "$(field "$l" greet)" = ok ] && [ "$(field "$l" in)" = $((5 + ${#client})) ] ||
		fail "the program did not see the verified client's bytes: $l"
	expect_verified "$srv" "$rule" "$peer" "127.0.0.1:$port" "$how"
}

# refused SERVER RULE CLIENT: the client is dropped: it receives no
# application byte (the greeting never leaves for it), the program reads
# nothing of what it sent, one error line.
refused() {
	local srv=$1 rule=$2 client=$3 port peer
	srv_need "$srv"
	port=$(port_of "$srv" "$rule")
	tls_client talk "$port" --greeting "$GREET" --send "CLIENT-DATA-MARK" \
		${client:+--cert "$CERTS/$client.pem" --key "$CERTS/$client.key"}
	[ "$(out result)" != ok ] || fail "client '$client' was served by rule $rule: $output"
	[ "$(out app)" = 0 ] ||
		fail "client '$client', refused, received application data: $output"
	peer=$(out local)
	[ -n "$peer" ] || fail "$output"
	expect_dropped "$srv" "$peer" greeting
	expect_refused "$srv" "$rule" "$peer" "127.0.0.1:$port"
}

both() { # CHECK ARGS...: for the thread and the epoll server
	"$1" THREAD "${@:2}"
	"$1" EPOLL "${@:2}"
}

@test "client-ca: a client without a certificate is dropped" {
	both refused need ""
}

@test "client-ca: a certificate from another CA is dropped" {
	both refused need stranger
}

@test "client-ca: an expired client certificate is dropped" {
	both refused need oldclient
}

@test "client-ca: a certificate without the TLS client purpose is dropped" {
	both refused need srvpurpose
}

@test "client-ca: a client of clients-ca is verified" {
	both accepted need app1 "client verified (app1.internal)"
}

@test "client-name: app1.internal (DNS SAN) is verified and named" {
	both accepted names app1 "client verified (app1.internal)"
}

@test "client-name: spiffe://test/app2 (URI SAN) is verified and named" {
	both accepted names app2 "client verified (spiffe://test/app2)"
}

@test "client-name: *.svc.internal admits db.svc.internal" {
	both accepted names svc "client verified (db.svc.internal)"
}

@test "client-name: *.svc.internal does not admit svc.internal itself" {
	both refused names apex
}

@test "client-name: a name not listed (app9.internal) is dropped" {
	both refused names app9
}

@test "client-name: a listed name from another CA is dropped (names never stand in for the chain)" {
	both refused names stranger
}

@test "client-name: no certificate is dropped" {
	both refused names ""
}

@test "client-pin-sha256: the pinned key is verified" {
	both accepted pins app1 "client verified (app1.internal)"
}

@test "client-pin-sha256: the same name and CA with another key is dropped" {
	both refused pins app1b
}

@test "no client-ca: no certificate asked, with or without one offered" {
	both accepted open "" "no client certificate asked"
	both accepted open app1 "no client certificate asked"
}

@test "openssl s_client: with app1's certificate it gets the greeting and the echo; without, not one byte of either" {
	srv_need THREAD
	local o=$BATS_TEST_TMPDIR/s_client
	s_client "$o" s_client-line s_client-line -quiet \
		-connect "127.0.0.1:$THREAD_NAMES" \
		-cert "$CERTS/app1.pem" -key "$CERTS/app1.key"
	grep -qF -- "$GREET" "$o" || fail "s_client with app1 did not get the greeting: $(cat "$o")"
	grep -qF -- s_client-line "$o" || fail "s_client with app1 got no echo: $(cat "$o")"
	s_client "$o" S_CLIENT-MARK S_CLIENT-MARK -quiet \
		-connect "127.0.0.1:$THREAD_NAMES"
	! grep -qF -- "$GREET" "$o" || fail "s_client without a certificate got the greeting: $(cat "$o")"
	! grep -qF -- S_CLIENT-MARK "$o" || fail "s_client without a certificate got an echo: $(cat "$o")"
}
