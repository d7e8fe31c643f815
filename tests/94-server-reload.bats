#!/usr/bin/env bats
# Server mode (issue 16): what changes while a server runs. cert/key and
# client-ca are read again when they change on disk (checked at most
# every 2 s): new connections get the new certificate (its fingerprint,
# as openssl s_client sees it), connections already open go on, a broken
# new file keeps the old one and logs an error. Session tickets: a
# returning client resumes, and a ticket never carries a client past a
# rule that asks for a certificate.

load server/helpers

setup_file() {
	require_tool openssl
	srv_certs
	export D=$BATS_FILE_TMPDIR/live
	mkdir -p "$D"
	cp "$CERTS/good.pem" "$D/rot.pem"
	cp "$CERTS/good.key" "$D/rot.key"
	cp "$CERTS/clients-ca.pem" "$D/cca.pem"
	export RP=$(srv_free_port) CP=$(srv_free_port)
	export OP=$(srv_free_port) NP=$(srv_free_port) LP=$(srv_free_port)
	export P=$BATS_FILE_TMPDIR/p.conf
	{
		printf '[rot]\naccept = 127.0.0.1:%s\ncert = %s\nkey = %s\n' \
			"$RP" "$D/rot.pem" "$D/rot.key"
		accept_rule cca "127.0.0.1:$CP" "client-ca = $D/cca.pem"
		accept_rule open "127.0.0.1:$OP"
		accept_rule names "127.0.0.1:$NP" \
			"client-ca = $CERTS/clients-ca.pem" "client-name = app1.internal"
		accept_rule crl "127.0.0.1:$LP" \
			"client-ca = $CERTS/clients-ca.pem" "crl-file = $CERTS/clients.crl"
	} >"$P"
	srv_c ROT thread "$P" -P "$RP" -P "$CP" -P "$OP" -P "$NP" -P "$LP" || true
}

teardown_file() {
	stop_servers
}

# replace FILE SOURCE: FILE becomes a copy of SOURCE, as deployment tools
# do it (a new file renamed over the old).
replace() {
	cp "$2" "$1.new"
	mv -f "$1.new" "$1"
}

# until_fp FINGERPRINT: at most 15 s until new connections get it.
until_fp() {
	local i fp
	for i in $(seq 30); do
		fp=$(fingerprint "$RP")
		[ "$fp" = "$1" ] && return 0
		sleep 0.5
	done
	fail "new connections still get $fp, not $1"
}

errors_about() { # TEXT: error lines of the server's log that name TEXT
	log_lines ROT "tlsshim: error: " | grep -cF -- "$1" || true
}

# until_error TEXT BEFORE: at most 15 s for more than BEFORE error lines
# naming TEXT. The files are looked at when a new connection needs them
# (at most every 2 s), so connections keep coming meanwhile.
until_error() {
	local i
	for i in $(seq 30); do
		[ "$(errors_about "$1")" -gt "$2" ] && return 0
		fingerprint "$RP" >/dev/null || true
		sleep 0.5
	done
	fail "no error line naming $1: $(tail -n 5 "$BATS_FILE_TMPDIR/ROT.log")"
}

@test "cert rotation: new connections get the new certificate, an open connection goes on; a broken or mismatched file keeps the last good pair, with an error; a fixed one is taken" {
	srv_need ROT
	local good new n go=$BATS_TEST_TMPDIR/go
	good=$(file_fingerprint "$CERTS/good.pem")
	new=$(file_fingerprint "$CERTS/server2.pem")
	[ "$(fingerprint "$RP")" = "$good" ] || fail "not serving rot.pem: $(fingerprint "$RP")"
	# A connection open across every change.
	timeout 90 python3 "$SRV/tlsclient.py" talk "$RP" --ca "$CERTS/ca.pem" \
		--send held --then-wait "$go" --timeout 80 >"$BATS_TEST_TMPDIR/held" &
	local held=$!
	for _ in $(seq 100); do
		grep -q '^waiting ' "$BATS_TEST_TMPDIR/held" && break
		sleep 0.1
	done
	grep -q '^waiting ' "$BATS_TEST_TMPDIR/held" || fail "the held connection did not start: $(cat "$BATS_TEST_TMPDIR/held")"

	replace "$D/rot.key" "$CERTS/server2.key"
	replace "$D/rot.pem" "$CERTS/server2.pem"
	until_fp "$new"

	# Broken: garbage in place of the certificate.
	n=$(errors_about rot.pem)
	printf -- '-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n' >"$D/rot.pem.new"
	mv -f "$D/rot.pem.new" "$D/rot.pem"
	until_error rot.pem "$n"
	[ "$(fingerprint "$RP")" = "$new" ] || fail "a broken certificate file did not keep the last good one"
	tls_client talk "$RP" --send after-broken
	[ "$(out result)" = ok ] || fail "no service after a broken file: $output"

	# Mismatched: a good certificate whose key is not the key file's.
	n=$(errors_about "rot.")
	replace "$D/rot.pem" "$CERTS/good.pem"
	until_error "rot." "$n"
	[ "$(fingerprint "$RP")" = "$new" ] || fail "a certificate that does not match the key was taken"

	# Fixed: the key follows.
	replace "$D/rot.key" "$CERTS/good.key"
	until_fp "$good"

	touch "$go"
	wait "$held" || true
	run tail -n 1 "$BATS_TEST_TMPDIR/held"
	[ "$(out result)" = ok ] || fail "the connection open across the rotations broke: $output"
}

@test "client-ca is read again: a CA swapped in admits its clients and no longer the old CA's" {
	srv_need ROT
	local i
	tls_client talk "$CP" --cert "$CERTS/app1.pem" --key "$CERTS/app1.key"
	[ "$(out result)" = ok ] || fail "app1 not admitted before the change: $output"
	tls_client talk "$CP" --cert "$CERTS/stranger.pem" --key "$CERTS/stranger.key"
	[ "$(out result)" != ok ] || fail "other-ca's client admitted before the change"
	replace "$D/cca.pem" "$CERTS/other-ca.pem"
	for i in $(seq 30); do
		tls_client talk "$CP" --cert "$CERTS/stranger.pem" --key "$CERTS/stranger.key"
		[ "$(out result)" = ok ] && break
		sleep 0.5
	done
	[ "$(out result)" = ok ] || fail "the new client-ca was not taken within 15 s: $output"
	tls_client talk "$CP" --cert "$CERTS/app1.pem" --key "$CERTS/app1.key"
	[ "$(out result)" != ok ] || fail "the old client-ca still admits app1"
	[ "$(out app)" = 0 ] || fail "$output"
}

@test "session resumption: openssl s_client -sess_out, then -sess_in: Reused, and the data still flows" {
	srv_need ROT
	local s=$BATS_TEST_TMPDIR/sess.pem o=$BATS_TEST_TMPDIR/o
	s_client "$o" '^session-line' session-line -connect "127.0.0.1:$OP" -sess_out "$s"
	grep -q '^New, TLSv1.3' "$o" || fail "first connection: $(cat "$o")"
	for _ in $(seq 50); do
		[ -s "$s" ] && break
		sleep 0.1
	done
	[ -s "$s" ] || fail "no session ticket arrived: $(cat "$o")"
	s_client "$o" '^session-line' session-line -connect "127.0.0.1:$OP" -sess_in "$s"
	grep -q '^Reused, TLSv1.3' "$o" || fail "the session was not resumed: $(grep -E '^(New|Reused)' "$o")"
	grep -q '^session-line' "$o" || fail "no echo on the resumed connection: $(tail -n 5 "$o")"
}

@test "session resumption never skips a client certificate: a ticket from a rule without client-ca, offered to one with it, gets nothing" {
	srv_need ROT
	local s=$BATS_TEST_TMPDIR/sess.pem o=$BATS_TEST_TMPDIR/o n
	s_client "$o" '^session-line' session-line -connect "127.0.0.1:$OP" -sess_out "$s"
	for _ in $(seq 50); do
		[ -s "$s" ] && break
		sleep 0.1
	done
	[ -s "$s" ] || fail "no session ticket arrived: $(cat "$o")"
	n=$(log_lines ROT "tlsshim: error: names " | wc -l)
	s_client "$o" '^session-line' session-line -connect "127.0.0.1:$NP" -sess_in "$s"
	! grep -q '^session-line' "$o" ||
		fail "a client without a certificate was served by a client-ca rule through a ticket: $(grep -E '^(New|Reused)' "$o")"
	log_wait ROT "tlsshim: error: names " || fail "no error line for the refused client"
	[ "$(log_lines ROT "tlsshim: error: names " | wc -l)" -gt "$n" ] ||
		fail "no new error line for the refused client"
}

@test "session resumption re-verifies the client's chain: a revoked client that kept the ticket of its refused handshake gets nothing" {
	srv_need ROT
	local s=$BATS_TEST_TMPDIR/sess.pem o=$BATS_TEST_TMPDIR/o n c
	c=(-cert "$CERTS/revoked.pem" -key "$CERTS/revoked.key")
	n=$(rec_count ROT "close ")
	s_client "$o" '^session-line' session-line -connect "127.0.0.1:$LP" "${c[@]}" -sess_out "$s"
	! grep -q '^session-line' "$o" || fail "a revoked client was served: $(cat "$o")"
	for _ in $(seq 50); do
		[ -s "$s" ] && break
		sleep 0.1
	done
	# GnuTLS sends the ticket inside the handshake, before tlsshim judges
	# the client: the refused client holds one.
	openssl sess_id -in "$s" -noout -text 2>/dev/null | grep -q 'TLS session ticket:' ||
		fail "the refused client kept no ticket: this test no longer tries the resumption it is about ($(cat "$o" | grep -E '^(New|Reused)'))"
	s_client "$o" '^session-line' session-line -connect "127.0.0.1:$LP" "${c[@]}" -sess_in "$s"
	! grep -q '^session-line' "$o" ||
		fail "a revoked client was served through the ticket: $(grep -E '^(New|Reused)' "$o")"
	for l in $(seq $((n + 1)) $((n + 2))); do
		rec_next ROT "close " "$((l - 1))" >/dev/null ||
			fail "the program recorded no end of connection $l"
	done
	! grep -F "close " "$BATS_FILE_TMPDIR/ROT.rec" | tail -n 2 | grep -qv ' in=0 ' ||
		fail "the program read bytes of the revoked client: $(tail -n 4 "$BATS_FILE_TMPDIR/ROT.rec")"
	[ "$(log_lines ROT "tlsshim: error: crl " | grep -c 'revoked')" -ge 2 ] ||
		fail "not two refusals naming the revocation: $(log_lines ROT "tlsshim: error: crl ")"
}
