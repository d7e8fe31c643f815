#!/usr/bin/env bats
# One decision (issue 13): for every match form, what `tlsshim --explain`
# predicts -- verdict, rule, name verified, SNI -- is what the preload does
# for the same destination, by its debug line and on the wire (the SNI the
# server received). Names come from libc through nss_wrapper's hosts file
# (a name per form, no /etc/hosts edit). And --probe: the same decision,
# every byte from the network escaped.

load helpers/common
load helpers/verify

setup_file() {
	verify_setup_file labcerts labhosts
}

setup() {
	verify_setup lab nsw
}

explain() {
	nshim "$@"
	EXPLAIN=$output
}

# block DEST PART: the lines --explain printed for DEST; PART is libc (the
# program resolves the name through libc), plain (it does not) or all.
block() {
	printf '%s\n' "$EXPLAIN" | awk -v a="$1" -v part="$2" '
		$0 == a || index($0, a " (") == 1 { on = 1; sub_ = "all"; next }
		on && /^[^ ]/ { on = 0 }
		on && /^  a program that resolves/ { sub_ = "libc"; next }
		on && /^  a program that does not/ { sub_ = "plain"; next }
		on && (part == "all" || sub_ == part || sub_ == "all") { print }'
}

# same DEST PART HOST PORT SERVER: what --explain said for DEST/PART is
# what the preload does when the program connects to HOST:PORT.
same() {
	local dest=$1 part=$2 host=$3 port=$4 srv=$5 b verdict sni
	b=$(block "$dest" "$part")
	verdict=$(printf '%s\n' "$b" | sed -n 's/^ *verdict: *//p' | head -1)
	[ -n "$verdict" ] || fail "--explain said nothing for $dest ($part): $EXPLAIN"
	: >"$BATS_TEST_TMPDIR/$srv.sni"
	nclient "$host" "$port"
	case $verdict in
	upgrade:*)
		assert_success
		assert_output --partial "tlsshim: debug: $dest: ${verdict#upgrade: }"
		assert_output --partial "$MARKER"
		sni=$(printf '%s\n' "$b" | sed -n 's/^ *SNI sent: *//p')
		case $sni in "(none"*) sni=- ;; esac
		assert_equal "$(tail -1 "$BATS_TEST_TMPDIR/$srv.sni")" "$sni"
		;;
	pass:*)
		assert_output --partial "tlsshim: debug: $dest: ${verdict#pass: }"
		assert_equal "$(error_lines)" 0
		;;
	refuse:*)
		assert_failure
		assert_output --partial " $dest: ${verdict#refuse: }"
		assert_equal "$(error_lines)" 1
		;;
	*)
		fail "unknown verdict '$verdict'"
		;;
	esac
}

# ---- the servers: leaf (localhost, 127.0.0.1, ::1), and *.lab.test ----

servers() {
	vserver S leaf-full --key "$CERTS/leaf.key" \
		--sni "$BATS_TEST_TMPDIR/S.sni"
	vserver W wild --sni "$BATS_TEST_TMPDIR/W.sni"
}

rule() {
	vrule "$P" "$@"
}

@test "decide: PORT, no sni: the learned name through libc, the IP literal without" {
	servers
	rule "$S_PORT"
	explain --explain "$P" "localhost:$S_PORT"
	assert_success
	same "127.0.0.1:$S_PORT" libc localhost "$S_PORT" S
	same "127.0.0.1:$S_PORT" plain 127.0.0.1 "$S_PORT" S
}

@test "decide: PORT-PORT with sni: the sni either way" {
	servers
	rule "$S_PORT-$((S_PORT + 1))" "sni = localhost"
	explain --explain "$P" "localhost:$S_PORT"
	assert_success
	assert_output --partial "whether or not the program resolves localhost through libc"
	same "127.0.0.1:$S_PORT" libc localhost "$S_PORT" S
	same "127.0.0.1:$S_PORT" plain 127.0.0.1 "$S_PORT" S
}

@test "decide: IP:PORT reached through a name verifies the name the program resolved" {
	servers
	rule "127.0.0.1:$S_PORT"
	explain --explain "$P" "localhost:$S_PORT"
	assert_success
	same "127.0.0.1:$S_PORT" libc localhost "$S_PORT" S
	same "127.0.0.1:$S_PORT" plain 127.0.0.1 "$S_PORT" S
}

@test "decide: CIDR:PORT and tls-port" {
	servers
	local fake
	fake=$($PY -c 'import socket; s = socket.socket()
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	rule "127.0.0.0/8:$fake" "tls-port = $S_PORT"
	explain --explain "$P" "127.0.0.1:$fake"
	assert_success
	assert_output --partial "connects to:   port $S_PORT (tls-port) instead of $fake"
	same "127.0.0.1:$fake" all 127.0.0.1 "$fake" S
}

@test "decide: [IPv6]:PORT, by address and by a name" {
	vserver S6 leaf-full --key "$CERTS/leaf.key" --host ::1 \
		--sni "$BATS_TEST_TMPDIR/S6.sni"
	rule "[::1]:$S6_PORT"
	explain --explain "$P" "[::1]:$S6_PORT"
	assert_success
	same "[::1]:$S6_PORT" all ::1 "$S6_PORT" S6
	# The name's certificate check fails (leaf has no v6.lab.test): the
	# verdict and the name are still the same on both sides.
	explain --explain "$P" "v6.lab.test:$S6_PORT"
	assert_success
	assert_output --partial "verdict:       upgrade: rule v, verifying v6.lab.test (name the program resolved)"
	nclient v6.lab.test "$S6_PORT"
	assert_failure
	assert_output --partial "tlsshim: debug: [::1]:$S6_PORT: rule v, verifying v6.lab.test (name the program resolved)"
	assert_output --partial "does not match the expected"
}

@test "decide: HOST:PORT fits only a program that resolved the name" {
	servers
	rule "localhost:$S_PORT"
	explain --explain "$P" "localhost:$S_PORT"
	assert_success
	same "127.0.0.1:$S_PORT" libc localhost "$S_PORT" S
	same "127.0.0.1:$S_PORT" plain 127.0.0.1 "$S_PORT" S
}

@test "decide: *.domain:PORT, the name one label below" {
	servers
	rule "*.lab.test:$W_PORT"
	explain --explain "$P" "api.lab.test:$W_PORT"
	assert_success
	same "127.0.0.1:$W_PORT" libc api.lab.test "$W_PORT" W
	same "127.0.0.1:$W_PORT" plain 127.0.0.1 "$W_PORT" W
}

@test "decide: tls = no passes; unmatched = refuse refuses" {
	servers
	rule "$S_PORT" "tls = no"
	explain --explain "$P" "localhost:$S_PORT"
	assert_success
	assert_output --partial "verdict:       pass: rule with tls = no; not upgraded"
	same "127.0.0.1:$S_PORT" libc localhost "$S_PORT" S
	printf 'unmatched = refuse\n[v]\nmatch = 9\nca-file = %s\n' \
		"$CERTS/ca.pem" >"$P"
	explain --explain "$P" "127.0.0.1:$S_PORT"
	assert_success
	assert_output --partial "verdict:       refuse: refused: no rule matches and the policy says unmatched = refuse"
	same "127.0.0.1:$S_PORT" all 127.0.0.1 "$S_PORT" S
}

@test "explain: the versions that will really be offered" {
	rule "127.0.0.1:9" "priority = NORMAL:-VERS-TLS1.3"
	explain --explain "$P" 127.0.0.1:9
	assert_success
	assert_output --partial "versions:      TLS1.2
"
	rule "127.0.0.1:9" "min-version = 1.3"
	explain --explain "$P" 127.0.0.1:9
	assert_output --partial "versions:      TLS1.3
"
	rule "127.0.0.1:9" "priority = NORMAL:+NULL"
	explain --explain "$P" 127.0.0.1:9
	assert_output --partial "engine:        refuses this rule's connections: priority 'NORMAL:+NULL' enables the cipher NULL"
}

# ---- --probe ----

@test "probe NAME:PORT verifies the name the program would resolve, as the preload does" {
	vserver N nameonly --sni "$BATS_TEST_TMPDIR/N.sni"
	rule "127.0.0.1:$N_PORT"
	run timeout 30 "$TLSSHIM" --probe "$P" "localhost:$N_PORT"
	assert_success
	assert_output --partial "connecting to 127.0.0.1:$N_PORT, verifying localhost (sent as SNI)"
	assert_output --partial "verdict: OK: verified localhost"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/N.sni")" localhost
	# The program itself, resolving the name: verified too.
	nclient localhost "$N_PORT"
	assert_success
	assert_output --partial "$MARKER"
}

@test "probe: a certificate subject with control characters reaches the terminal escaped" {
	vserver C ctrl-full --key "$CERTS/ctrl.key"
	rule "127.0.0.1:$C_PORT"
	run timeout 30 "$TLSSHIM" --probe "$P" "127.0.0.1:$C_PORT"
	assert_success
	assert_output --partial 'subject: CN=evil\x1b[31mRED\x1b]0\;title\x07bell\xc2\x9b2J'
	if printf '%s' "$output" | LC_ALL=C grep -q "$(printf '[\001-\010\013-\037\177\200-\377]')"; then
		fail "a control or non-ASCII byte reached the output"
	fi
	# So is what --check quotes of a policy.
	printf '[v]\nmatch = 9\nsni = \033[31mred\n' >"$P"
	shim --check "$P"
	assert_failure
	assert_output "$P:3:7: bad sni '\x1b[31mred': invalid character 0x1b"
	# The preload's own lines are escaped the same way: a reason that
	# quotes the subject (crl-file has no CRL of the leaf's issuer).
	$PY "$HELPERS/labpki.py" crl "$CERTS" ca "$BATS_TEST_TMPDIR/root.crl"
	rule "127.0.0.1:$C_PORT" "crl-file = $BATS_TEST_TMPDIR/root.crl"
	nclient 127.0.0.1 "$C_PORT"
	assert_failure
	assert_output --partial 'the issuer of the server'"'"'s certificate (CN=evil\x1b[31mRED\x1b]0\;title\x07bell\xc2\x9b2J)'
	if printf '%s' "$output" | LC_ALL=C grep -q "$(printf '\033')"; then
		fail "an escape byte reached the log"
	fi
}

@test "probe under unmatched = refuse: refused by the policy, nothing connects" {
	vserver S leaf-full --key "$CERTS/leaf.key"
	printf 'unmatched = refuse\n[v]\nmatch = 9\n' >"$P"
	run timeout 30 "$TLSSHIM" --probe "$P" "127.0.0.1:$S_PORT"
	assert_failure
	assert_output --partial "verdict: REFUSED by the policy: no rule matches and the policy says unmatched = refuse"
	[ ! -s "$BATS_TEST_TMPDIR/S.raw" ] || fail "the probe connected"
}
