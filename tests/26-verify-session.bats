#!/usr/bin/env bats
# The session itself (issue 13): whatever `priority` says, no cipher
# without encryption, no unauthenticated key exchange, no version outside
# min-version..max-version; the versions `priority` disables stay off; the
# key log goes only to a private regular file of the user's.

load helpers/common
load helpers/verify

setup_file() {
	verify_setup_file vcerts
}

setup() {
	verify_setup
}

# ---- the floor ----

@test "floor: a NULL cipher is refused (check, and connect: no byte in the clear)" {
	vpolicy "$P" 9 "priority = NORMAL:+NULL"
	shim --check "$P"
	assert_failure
	assert_output "$P:1: rule 'v': priority 'NORMAL:+NULL' enables the cipher NULL (no encryption): below tlsshim's floor"
	# A server that offers nothing but NULL ciphers: what crossed the
	# wire before is the program's bytes in the clear.
	vserver S good --tls-max 1.2 --ciphers 'eNULL:@SECLEVEL=0'
	vpolicy "$P" "$S_PORT" "priority = NORMAL:+NULL"
	vclient 127.0.0.1 "$S_PORT"
	vrefused S 127.0.0.1 "priority 'NORMAL:\+NULL' enables the cipher NULL \(no encryption\)"
}

@test "floor: --check names what each weakening priority enables" {
	local p why
	while IFS='|' read -r p why; do
		vpolicy "$P" 9 "priority = $p"
		shim --check "$P"
		assert_failure
		assert_output --partial "rule 'v': priority '$p' $why"
		assert_output --partial "below tlsshim's floor"
	done <<'EOF'
NORMAL:+ANON-ECDH|enables the key exchange ANON-ECDH, in which the server does not prove itself with a certificate
NORMAL:+ECDHE-PSK|enables the key exchange ECDHE-PSK, in which the server does not prove itself with a certificate
NORMAL:+SRP|enables the key exchange SRP, in which the server does not prove itself with a certificate
NORMAL:+CTYPE-SRV-RAWPK|lets the server authenticate with a Raw Public Key instead of an X.509 certificate
NORMAL:+ARCFOUR-128|enables the cipher ARCFOUR-128 (RC4, which RFC 7465 forbids)
NORMAL:+3DES-CBC:+DES-CBC|enables the cipher DES-CBC (keys below 112 bits)
NORMAL:+SIGN-RSA-MD5|enables the signature RSA-MD5 (a broken hash)
EOF
}

@test "floor: an anonymous key exchange in priority refuses the rule's connections" {
	vserver S good
	vpolicy "$P" "$S_PORT" "priority = NORMAL:+ANON-ECDH"
	vclient 127.0.0.1 "$S_PORT"
	vrefused S 127.0.0.1 "enables the key exchange ANON-ECDH"
}

# ---- versions: priority, min-version and max-version together ----

@test "versions: priority NORMAL:-VERS-TLS1.3 keeps TLS 1.3 off" {
	vserver S good --version-file "$BATS_TEST_TMPDIR/v"
	vpolicy "$P" "$S_PORT" "priority = NORMAL:-VERS-TLS1.3"
	vclient 127.0.0.1 "$S_PORT"
	vaccepted S
	assert_equal "$(cat "$BATS_TEST_TMPDIR/v")" TLSv1.2
}

@test "versions: max-version = 1.2 keeps TLS 1.3 off; the default offers it" {
	vserver S good --version-file "$BATS_TEST_TMPDIR/v"
	vpolicy "$P" "$S_PORT" "max-version = 1.2"
	vclient 127.0.0.1 "$S_PORT"
	assert_success
	vpolicy "$P" "$S_PORT"
	vclient 127.0.0.1 "$S_PORT"
	assert_success
	assert_equal "$(cat "$BATS_TEST_TMPDIR/v")" "TLSv1.2
TLSv1.3"
	# A TLS 1.3-only server is then refused, before any byte.
	vserver T good --tls-min 1.3
	vpolicy "$P" "$T_PORT" "max-version = 1.2"
	vclient 127.0.0.1 "$T_PORT"
	vrefused T 127.0.0.1 "protocol version"
}

@test "versions: nothing left to offer, or min above max, is a policy error" {
	vpolicy "$P" 9 "priority = NORMAL:-VERS-TLS-ALL:+VERS-TLS1.1"
	shim --check "$P"
	assert_failure
	assert_output "$P:1: rule 'v': priority 'NORMAL:-VERS-TLS-ALL:+VERS-TLS1.1' with min-version 1.2 and max-version 1.3 leaves no TLS version to offer"
	vpolicy "$P" 9 "min-version = 1.3" "priority = NORMAL:-VERS-TLS1.3"
	shim --check "$P"
	assert_failure
	assert_output --partial "with min-version 1.3 and max-version 1.3 leaves no TLS version to offer"
	vpolicy "$P" 9 "min-version = 1.3" "max-version = 1.2"
	shim --check "$P"
	assert_failure
	assert_output --partial "rule 'v': min-version 1.3 is above max-version 1.2"
}

# ---- keylog-file ----

@test "keylog-file: a symbolic link planted there is not followed" {
	vserver S good
	local target=$BATS_TEST_TMPDIR/victim
	: >"$target"
	chmod 600 "$target"
	ln -s "$target" "$BATS_TEST_TMPDIR/keys"
	vpolicy "$P" "$S_PORT" "keylog-file = $BATS_TEST_TMPDIR/keys"
	vclient 127.0.0.1 "$S_PORT"
	vrefused S 127.0.0.1 "keylog-file .*/keys: a symbolic link: refused"
	[ ! -s "$target" ] || fail "session secrets reached the link's target"
}

@test "keylog-file: an existing file others may read gets no secrets" {
	vserver S good
	local k=$BATS_TEST_TMPDIR/keys
	: >"$k"
	chmod 644 "$k"
	vpolicy "$P" "$S_PORT" "keylog-file = $k"
	vclient 127.0.0.1 "$S_PORT"
	vrefused S 127.0.0.1 "keylog-file .*/keys: mode 0644 lets group or others at the session keys: refused \(chmod 600 it\)"
	[ ! -s "$k" ] || fail "session secrets written to a 0644 file"
	# Not a regular file: refused too.
	mkdir "$BATS_TEST_TMPDIR/dir"
	vpolicy "$P" "$S_PORT" "keylog-file = $BATS_TEST_TMPDIR/dir"
	vclient 127.0.0.1 "$S_PORT"
	vrefused S 127.0.0.1 "keylog-file .*/dir: (not a regular file|Is a directory)"
	# chmod 600: accepted, and the secrets are there.
	chmod 600 "$k"
	vpolicy "$P" "$S_PORT" "keylog-file = $k"
	vclient 127.0.0.1 "$S_PORT"
	assert_success
	assert_output --partial "$MARKER"
	grep -q '^CLIENT_TRAFFIC_SECRET_0 ' "$k" || fail "no secrets in $k"
}

@test "keylog-file: a file another user owns gets no secrets" {
	[ "$(id -u)" -eq 0 ] || fail "this test needs root (to give the file to another user)"
	vserver S good
	local k=$BATS_TEST_TMPDIR/keys
	: >"$k"
	chmod 600 "$k"
	chown nobody "$k"
	vpolicy "$P" "$S_PORT" "keylog-file = $k"
	vclient 127.0.0.1 "$S_PORT"
	vrefused S 127.0.0.1 "keylog-file .*/keys: owned by uid $(id -u nobody), not by this user \(uid 0\): refused"
	[ ! -s "$k" ] || fail "session secrets written to another user's file"
}
