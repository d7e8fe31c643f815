#!/usr/bin/env bats
# The resolver hooks: every one of them teaches the name it resolved, and
# each returns exactly what libc returned (results, return codes, h_errno).

load helpers/common
load helpers/verify

setup_file() {
	verify_setup_file vcerts
}

setup() {
	verify_setup
}

@test "resolver hooks return exactly what libc returns" {
	printf '[r]\nmatch = 127.0.0.1:9\n' >"$P"
	run timeout 30 $PY "$HELPERS/resolve-probe.py" probe
	assert_success
	local plain=$output
	[ "$(printf '%s\n' "$plain" | grep -c rc=0)" -ge 3 ] ||
		fail "the probe resolved nothing: $plain"
	run timeout 30 env TLSSHIM_POLICY="$P" LD_PRELOAD="$LIB" $PY \
		"$HELPERS/resolve-probe.py" probe
	assert_success
	assert_equal "$output" "$plain"
}

learns() {
	vserver S nameonly --sni "$BATS_TEST_TMPDIR/sni"
	vpolicy "$P" "$S_PORT"
	run timeout 30 env TLSSHIM_LOG=debug TLSSHIM_POLICY="$P" \
		LD_PRELOAD="$LIB" $PY "$HELPERS/resolve-probe.py" learn \
		"$1" "$S_PORT" "$MARKER"
	assert_success
	assert_output --partial "verifying localhost (name the program resolved)"
	assert_output --partial "$MARKER"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/sni")" localhost
}

@test "learned from getaddrinfo" {
	learns getaddrinfo
}

@test "learned from gethostbyname" {
	learns gethostbyname
}

@test "learned from gethostbyname2" {
	learns gethostbyname2
}

@test "learned from gethostbyname_r" {
	learns gethostbyname_r
}

@test "learned from gethostbyname2_r" {
	learns gethostbyname2_r
}

@test "nothing resolved: the IP literal is verified (and fails here)" {
	vserver S nameonly
	vpolicy "$P" "$S_PORT"
	run timeout 30 env TLSSHIM_POLICY="$P" LD_PRELOAD="$LIB" $PY \
		"$HELPERS/resolve-probe.py" learn none "$S_PORT" "$MARKER"
	vrefused S 127.0.0.1 "does not match the expected"
}
