#!/usr/bin/env bats
# lynx resolves host names in a forked child and connects in the parent:
# under a name rule it is verified (the names a process learned are shared
# with its children and parents), judged on the wire as in 13-leaks.bats.
# A file of its own: lynx hangs in setlocale() under a preloaded ASan
# runtime, tlsshim or not, so the sanitizer step leaves it out (like the
# files that run curl).

load helpers/common

MARK=TLSSHIM-LEAK-MARKER

setup_file() {
	require_tool python3 lynx
	certs
	export CERTS
	tls_server HTTP http good
	REC=$BATS_FILE_TMPDIR/rec
	export REC
	local pf=$BATS_FILE_TMPDIR/tap.port
	python3 "$HELPERS/wiretap.py" --port-file "$pf" --record-dir "$REC" \
		--upstream-port "$HTTP_PORT" --idle 5 --max-seconds 300 \
		3>&- 2>>"$BATS_FILE_TMPDIR/tap.log" &
	echo $! >>"$BATS_FILE_TMPDIR/pids"
	wait_port_file "$pf" || fail "the tap did not start"
	TAPH_PORT=$(cat "$pf")
	export TAPH_PORT
}

teardown_file() {
	stop_servers
}

@test "lynx resolves in a child: verified under a name rule" {
	POLICY=$BATS_TEST_TMPDIR/name.conf
	printf '[name]\nmatch = localhost:%s\nca-file = %s\n' "$TAPH_PORT" \
		"$CERTS/ca.pem" >"$POLICY"
	run timeout 30 "$TLSSHIM" -p "$POLICY" -- lynx -dump \
		"http://localhost:$TAPH_PORT/$MARK"
	assert_success
	assert_output --partial "hello from the tls server, path /$MARK"
	[ -s "$REC/conn-1.raw" ] || fail "the tap saw no connection"
	[ "$(od -An -tx1 -N2 "$REC/conn-1.raw" | tr -d ' ')" = 1603 ] ||
		fail "the first bytes on the wire are not a TLS record"
	run grep -c -a "$MARK" "$REC"/conn-*.raw
	assert_output 0
}
