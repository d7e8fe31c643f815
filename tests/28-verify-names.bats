#!/usr/bin/env bats
# Names, as a certificate means them (issue 13, "also in this class"): a
# trailing dot and upper case do not change the name; IDNA names are
# verified in their ASCII form; a wildcard covers one label, not two; an
# IP address is found only among the certificate's IP addresses, never in
# its subject's CN, also when libc reads "127.1" as 127.0.0.1.

load helpers/common
load helpers/verify

setup_file() {
	verify_setup_file labcerts labhosts
}

setup() {
	verify_setup lab nsw
}

@test "names: a resolved name with a trailing dot and upper case is the name" {
	vserver W wild --sni "$BATS_TEST_TMPDIR/sni"
	vpolicy "$P" "$W_PORT"
	nclient API.LAB.TEST. "$W_PORT"
	assert_success
	assert_output --partial "verifying api.lab.test (name the program resolved)"
	assert_output --partial "$MARKER"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/sni")" api.lab.test
}

@test "names: sni with a trailing dot and upper case, and --probe NAME.:PORT" {
	vserver W wild --sni "$BATS_TEST_TMPDIR/sni"
	vpolicy "$P" "$W_PORT" "sni = API.Lab.Test."
	vclient 127.0.0.1 "$W_PORT"
	vaccepted W
	vpolicy "$P" "$W_PORT"
	nshim --probe "$P" "API.Lab.TEST.:$W_PORT"
	assert_success
	assert_output --partial "verifying api.lab.test (sent as SNI)"
	assert_output --partial "verdict: OK: verified api.lab.test"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/sni")" "api.lab.test
api.lab.test"
}

@test "names: an IDNA name is verified and sent in its ASCII form; a U-label is a policy error" {
	vserver I idna --sni "$BATS_TEST_TMPDIR/sni"
	vpolicy "$P" "$I_PORT" "sni = XN--BCHER-KVA.lab.test"
	vclient 127.0.0.1 "$I_PORT"
	vaccepted I
	assert_equal "$(cat "$BATS_TEST_TMPDIR/sni")" xn--bcher-kva.lab.test
	vpolicy "$P" "$I_PORT" "sni = bücher.lab.test"
	shim --check "$P"
	assert_failure
	assert_output --partial "bad sni 'b\xc3\xbccher.lab.test': invalid character 0xc3"
}

@test "names: a wildcard covers one label, not two, not the domain itself" {
	vserver W wild
	vpolicy "$P" "$W_PORT" "sni = a.lab.test"
	vclient 127.0.0.1 "$W_PORT"
	vaccepted W
	# A fresh recorder for the refusals: none of them may reach it.
	vserver X wild
	local n
	for n in a.b.lab.test lab.test; do
		vpolicy "$P" "$X_PORT" "sni = $n"
		vclient 127.0.0.1 "$X_PORT"
		vrefused X "$n" "The name in the certificate does not match the expected"
	done
	# Learned two labels deep: the same.
	vpolicy "$P" "$X_PORT"
	nclient a.b.lab.test "$X_PORT"
	vrefused X a.b.lab.test "does not match the expected"
}

@test "names: an IP address only in the subject's CN does not verify" {
	vserver S ipcn
	vpolicy "$P" "$S_PORT"
	vclient 127.0.0.1 "$S_PORT"
	vrefused S 127.0.0.1 "The name in the certificate does not match the expected"
}

@test "names: \"127.1\" (libc's 127.0.0.1) is not verified as a name against a CN" {
	vserver S dotted
	vpolicy "$P" "$S_PORT"
	vclient 127.1 "$S_PORT"
	vrefused S 127.1 "the name '127\.1' is an IPv4 address in a non-standard form: it cannot be verified as a name"
}
