#!/usr/bin/env bats
# Server mode (issue 16): the session keys of an accept rule are enforced
# on the served connection, not only shown by --check and --explain:
# alpn and alpn-required, min-version, max-version, priority,
# keylog-file, and client-name on a certificate that has only a common
# name. One unmodified thread server listens on one port per rule; each
# client (Python's ssl) is judged by what it negotiated or, when refused,
# by what it received (not one byte of the greeting) and by what the
# program recorded (nothing read, greeting write EPIPE, read 0). The
# badlog rule has a server of its own that waits before each accept, so
# that the client's ClientHello is already queued when accept() returns.

load server/helpers

GREET="HELLO-FROM-THE-PROGRAM"
NO_SUITE="the client offers no TLS version and cipher suite the rule allows (see min-version, max-version, priority)"
RULES="alpnreq alpnopt v13 v12 prio keylog cn badlog"

setup_file() {
	srv_certs
	local r port args=()
	for r in $RULES; do
		port=$(srv_free_port)
		eval "export PORT_$r=$port"
		[ "$r" = badlog ] || args+=(-P "$port")
	done
	KEYLOG=$BATS_FILE_TMPDIR/server-keys.log
	BADLOG=$BATS_FILE_TMPDIR/open-keys.log
	: >"$BADLOG"
	chmod 0644 "$BADLOG"
	export KEYLOG BADLOG
	{
		accept_rule alpnreq "127.0.0.1:$PORT_alpnreq" \
			"alpn = redis, h2" "alpn-required = yes"
		accept_rule alpnopt "127.0.0.1:$PORT_alpnopt" "alpn = redis"
		accept_rule v13 "127.0.0.1:$PORT_v13" "min-version = 1.3"
		accept_rule v12 "127.0.0.1:$PORT_v12" "max-version = 1.2"
		accept_rule prio "127.0.0.1:$PORT_prio" \
			"priority = NORMAL:-AES-256-GCM:-CHACHA20-POLY1305:-AES-128-CCM"
		accept_rule keylog "127.0.0.1:$PORT_keylog" "keylog-file = $KEYLOG"
		accept_rule cn "127.0.0.1:$PORT_cn" \
			"client-ca = $CERTS/clients-ca.pem" \
			"client-name = cnonly.internal, app1"
	} >"$BATS_FILE_TMPDIR/session.conf"
	srv_c SRV thread "$BATS_FILE_TMPDIR/session.conf" "${args[@]}" \
		-g "$GREET" || true
	accept_rule badlog "127.0.0.1:$PORT_badlog" "keylog-file = $BADLOG" \
		>"$BATS_FILE_TMPDIR/late.conf"
	srv_c LATE thread "$BATS_FILE_TMPDIR/late.conf" -P "$PORT_badlog" \
		-g "$GREET" -w 500 || true
}

teardown_file() {
	stop_servers
}

port() { local v="PORT_$1"; echo "${!v}"; }

# served RULE CLIENT-ARGS...: the client gets the greeting and its echo,
# the program read its bytes; one info line for it, no error line. Its
# result line stays in $output.
served() {
	local rule=$1 p peer l
	shift
	srv_need SRV
	p=$(port "$rule")
	tls_client talk "$p" --greeting "$GREET" --send "from-$rule" "$@"
	[ "$(out result)" = ok ] || fail "not served by rule $rule: $output"
	peer=$(out local)
	l=$(rec_wait SRV "close peer=$peer ") || fail "no record of $peer"
	[ "$(field "$l" greet)" = ok ] && [ "$(field "$l" in)" = $((5 + ${#rule})) ] ||
		fail "the program did not see the client's bytes: $l"
	log_wait SRV "rule $rule $peer -> 127.0.0.1:$p: TLS" ||
		fail "no info line for $peer: $(tail -n 5 "$BATS_FILE_TMPDIR/SRV.log")"
	[ -z "$(log_lines SRV " $peer -> 127.0.0.1:$p: " | grep '^tlsshim: error: ')" ] ||
		fail "an error line for a served client: $(log_lines SRV " $peer -> ")"
}

# dropped RULE REASON CLIENT-ARGS...: the client receives no application
# byte, the program reads nothing of it and its greeting write fails; one
# error line for it, holding REASON. The server: $S (default SRV).
dropped() {
	local rule=$1 reason=$2 p peer l n S=${S:-SRV}
	shift 2
	srv_need "$S"
	p=$(port "$rule")
	n=$(rec_count "$S" "close ")
	tls_client talk "$p" --greeting "$GREET" --send "CLIENT-DATA-MARK" "$@"
	[ "$(out result)" != ok ] || fail "served by rule $rule: $output"
	[ "$(out app)" = 0 ] || fail "a refused client received application data: $output"
	peer=$(out local)
	[ -n "$peer" ] || fail "$output"
	# One client at a time: the next close line is this client's.
	l=$(rec_next "$S" "close " "$n") || fail "$S recorded no end for $peer"
	expect_dropped_line "$l" greeting
	expect_refused "$S" "$rule" "$peer" "127.0.0.1:$p"
	l=$(log_lines "$S" " $peer -> 127.0.0.1:$p: " | grep '^tlsshim: error: ')
	[[ $l == *"$reason"* ]] || fail "the refusal does not say '$reason': $l"
}

@test "alpn-required: the rule's first protocol wins over the client's order (server precedence)" {
	served alpnreq --alpn h2,redis
	[ "$(out alpn)" = redis ] || fail "$output"
	served alpnreq --alpn http/1.1,h2
	[ "$(out alpn)" = h2 ] || fail "$output"
}

@test "alpn-required: a client offering none of the rule's protocols is dropped, with the no_application_protocol alert (RFC 7301)" {
	dropped alpnreq "alpn-required: the client offered none of the rule's protocols" \
		--alpn imap
	[[ $output == *no_application_protocol* ]] || fail "not the no_application_protocol alert: $output"
}

@test "alpn-required: a client offering no ALPN at all is dropped" {
	dropped alpnreq "alpn-required: the client offered none of the rule's protocols"
}

@test "alpn without alpn-required: the protocol is chosen when offered; a client offering another one is still served" {
	served alpnopt --alpn imap,redis
	[ "$(out alpn)" = redis ] || fail "$output"
	served alpnopt --alpn imap
	[ "$(out alpn)" = - ] || fail "a protocol the rule does not list was selected: $output"
}

@test "min-version = 1.3: a TLS 1.2-only client is dropped; a TLS 1.3 one served" {
	dropped v13 "$NO_SUITE" --max-tls 1.2
	served v13
	[ "$(out version)" = TLSv1.3 ] || fail "$output"
}

@test "max-version = 1.2: a client able to do 1.3 gets TLS 1.2; a TLS 1.3-only client is dropped" {
	served v12
	[ "$(out version)" = TLSv1.2 ] || fail "$output"
	log_lines SRV "rule v12 $(out local) -> " | grep -q ": TLS1.2 " ||
		fail "the info line does not name TLS1.2: $(log_lines SRV "rule v12 $(out local) -> ")"
	dropped v12 "$NO_SUITE" --min-tls 1.3
}

@test "priority: the server offers only what the rule's priority allows" {
	served prio
	[ "$(out cipher)" = TLS_AES_128_GCM_SHA256 ] ||
		fail "expected AES-128-GCM, the only TLS 1.3 AEAD the priority leaves: $output"
	# The same client without the rule's limit picks AES-256-GCM.
	served alpnopt
	[ "$(out cipher)" != TLS_AES_128_GCM_SHA256 ] ||
		fail "the control rule also chose AES-128-GCM; the check above proves nothing: $output"
}

@test "keylog-file: the server writes its session secrets, 0600, the same the client logged" {
	local ck=$BATS_TEST_TMPDIR/client-keys.log mine
	served keylog --keylog "$ck"
	[ -s "$KEYLOG" ] || fail "the server wrote no key log"
	[ "$(stat -c %a "$KEYLOG")" = 600 ] || fail "mode $(stat -c %a "$KEYLOG")"
	mine=$(grep -c '^[A-Z_0-9]* [0-9a-f]* [0-9a-f]*$' "$ck")
	[ "$mine" -ge 4 ] || fail "the client logged $mine secrets: $(cat "$ck")"
	while read -r label random secret; do
		case $label in '#'* | '') continue ;; esac
		grep -qx "$label $random $secret" "$KEYLOG" ||
			fail "the server's key log lacks the client's $label: $(cat "$KEYLOG")"
	done <"$ck"
}

@test "keylog-file that group or others may read: the client is dropped, the program reads none of its queued bytes, no secret is written" {
	S=LATE dropped badlog "keylog-file $BADLOG: mode 0644"
	[ ! -s "$BADLOG" ] || fail "secrets were written to a world-readable file: $(cat "$BADLOG")"
}

@test "client-name on a certificate without SAN: its common name is the identity" {
	served cn --cert "$CERTS/cnonly.pem" --key "$CERTS/cnonly.key"
	log_lines SRV "rule cn $(out local) -> " | grep -qF 'client verified (cnonly.internal)' ||
		fail "$(log_lines SRV "rule cn $(out local) -> ")"
}

@test "client-name: a common name is never the identity when the certificate has SANs" {
	# app1's CN is app1 (listed); its DNS SAN app1.internal is not.
	dropped cn "the client's certificate (app1.internal) names no identity client-name allows" \
		--cert "$CERTS/app1.pem" --key "$CERTS/app1.key"
}

@test "client-name: a SAN too long to read still rules out the common name" {
	# longsan's CN is cnonly.internal (listed); its one DNS SAN is 305 bytes.
	dropped cn "names no identity client-name allows" \
		--cert "$CERTS/longsan.pem" --key "$CERTS/longsan.key"
}
