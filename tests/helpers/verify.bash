# Shared by the verification suites (tests/2*-verify*.bats), on top of
# common.bash: certificates from gencerts-verify.sh, a TLS server that
# records every raw byte it receives, and checks that a refusal carried no
# plaintext.

# Debian's python3 (what tests/bootstrap.sh installs); a python3 first in
# PATH may be a slow wrapper (pyenv's shims cost a second per start).
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3

# require_pymod MODULE: a Python module the test needs (Debian's python3-*
# package, installed by tests/bootstrap.sh), or a loud failure.
require_pymod() {
	$PY -c "import $1" 2>/dev/null ||
		fail "required Python module '$1' is not installed (python3-$1)"
}

# The setup every verification file shares (tests/2*-verify-*.bats).
# verify_setup_file PKI...: the tools, then the certificates (vcerts; or
# labcerts, and labhosts for names through nss_wrapper).
verify_setup_file() {
	local step
	require_tool certtool openssl python3
	for step in "$@"; do
		"$step"
	done
}

# verify_setup [lab] [nsw]: per test, the tools and the policy path $P;
# lab: the lab PKI's Python module; nsw: nss_wrapper (nsw_setup).
verify_setup() {
	require_tool python3 certtool openssl
	case " $* " in *" lab "*) require_pymod cryptography ;; esac
	case " $* " in *" nsw "*) nsw_setup ;; esac
	P=$BATS_TEST_TMPDIR/p.conf
}

teardown_file() {
	stop_servers
}

vcerts() {
	CERTS=$BATS_FILE_TMPDIR/certs
	sh "$HELPERS/gencerts-verify.sh" "$CERTS" ||
		fail "gencerts-verify.sh failed"
	export CERTS
}

# vserver NAME CERT [verify-server.py args...]: exports NAME_PORT; the raw
# bytes go to $BATS_TEST_TMPDIR/NAME.raw, the decrypted ones to NAME.plain.
vserver() {
	local name=$1 cert=$2
	shift 2
	local pf=$BATS_TEST_TMPDIR/$name.port
	serve_bg "$name" "$pf" $PY "$HELPERS/verify-server.py" \
		--cert "$CERTS/$cert.pem" --key "$CERTS/${cert%-full}.key" \
		--raw "$BATS_TEST_TMPDIR/$name.raw" \
		--plain "$BATS_TEST_TMPDIR/$name.plain" \
		--port-file "$pf" --max-seconds 120 "$@" || return 1
	eval "${name}_PORT=\$(cat \"\$pf\")"
	export "${name}_PORT"
}

# pin_of CERT: the RFC 7469 pin-sha256 of CERT's public key.
pin_of() {
	certtool --pubkey-info --outder --infile "$CERTS/$1.pem" 2>/dev/null |
		openssl dgst -sha256 -binary | base64
}

MARKER=TLSSHIM-PLAINTEXT-MARKER-4f1c

# vpolicy FILE PORT [lines...]: a rule "v" for 127.0.0.1:PORT trusting
# ca.pem unless a line sets ca-file.
vpolicy() {
	local f=$1 port=$2
	shift 2
	vrule "$f" "127.0.0.1:$port" "$@"
}

# vrule FILE MATCH [lines...]: a rule "v" for MATCH trusting ca.pem unless
# a line sets ca-file (or tls = no, where ca-file means nothing).
vrule() {
	local f=$1 m=$2 l
	shift 2
	{
		echo "[v]"
		echo "match = $m"
		printf '%s\n' "$@" | grep -q -e '^ca-file' -e '^tls = no' ||
			echo "ca-file = $CERTS/ca.pem"
		for l in "$@"; do echo "$l"; done
	} >"$f"
}

# labcerts: the lab PKI of tests/helpers/labpki.py in this file's
# directory, as $CERTS (ca.pem is its root).
labcerts() {
	CERTS=$BATS_FILE_TMPDIR/lab
	$PY "$HELPERS/labpki.py" init "$CERTS" || fail "labpki.py failed"
	export CERTS
}

# labhosts: $HOSTS, the lab's names for nss_wrapper (nsw_setup).
labhosts() {
	HOSTS=$BATS_FILE_TMPDIR/hosts
	printf '%s\n' '127.0.0.1 api.lab.test a.b.lab.test' \
		'::1 v6.lab.test' >"$HOSTS"
	export HOSTS
}

# nsw_setup: $NSW, nss_wrapper's library, for names that resolve through
# libc from the hosts file $HOSTS (labhosts) -- no edit of /etc/hosts.
nsw_setup() {
	NSW=$(ls /usr/lib/*/libnss_wrapper.so 2>/dev/null | head -1)
	[ -n "$NSW" ] || fail "libnss_wrapper.so is missing (libnss-wrapper)"
}

# nclient HOST PORT: the plaintext client under the preload (first, so
# its resolver hooks see the lookups nss_wrapper answers from $HOSTS) with
# the policy in $P, debug lines on; it sends $MARKER.
nclient() {
	run timeout 30 env LD_PRELOAD="$LIB $NSW" NSS_WRAPPER_HOSTS="$HOSTS" \
		TLSSHIM_POLICY="$P" TLSSHIM_LOG=debug $PY \
		"$HELPERS/plainclient.py" send "$1" "$2" "$MARKER"
}

# nshim ARGS...: the launcher, resolving through nss_wrapper too.
nshim() {
	run timeout 30 env \
		LD_PRELOAD="${TLSSHIM_SAN_PRELOAD:+$TLSSHIM_SAN_PRELOAD }$NSW" \
		NSS_WRAPPER_HOSTS="$HOSTS" "$TLSSHIM" "$@"
}

# An HTTP request carrying $MARKER, for openssl s_server -www
# (staple_server); sclient PORT sends it under tlsshim with $P.
REQ=$(printf 'GET /%s HTTP/1.0\r\n\r\n' "$MARKER")

sclient() {
	shim -p "$P" -- $PY "$HELPERS/plainclient.py" send 127.0.0.1 \
		"$1" "$REQ"
}

# vclient HOST PORT: the plaintext client under tlsshim with the policy in
# $BATS_TEST_TMPDIR/p.conf; it sends $MARKER and prints the echo.
vclient() {
	shim -p "$BATS_TEST_TMPDIR/p.conf" -- $PY \
		"$HELPERS/plainclient.py" send "$1" "$2" "$MARKER"
}

# vrefused SERVER NAME REASON-REGEX: the last vclient was refused with one
# error line naming rule v, the destination, NAME and the reason, and the
# server's raw recording holds no byte of the program's data.
vrefused() {
	local srv=$1 name=$2 reason=$3
	local port
	eval "port=\$${srv}_PORT"
	assert_failure
	assert_output --partial "Connection refused"
	assert_equal "$(error_lines)" 1
	assert_output --regexp "tlsshim: error: v 127\.0\.0\.1:$port \($name\): .*$reason"
	no_plaintext "$srv"
}

no_plaintext() {
	local raw=$BATS_TEST_TMPDIR/$1.raw
	# Let the recorder drain what reached the server's socket.
	sleep 0.3
	[ -e "$raw" ] || fail "no raw recording $raw"
	if grep -q "$MARKER" "$raw"; then
		fail "plaintext reached the server"
	fi
	[ ! -s "$BATS_TEST_TMPDIR/$1.plain" ] ||
		fail "the server decrypted program data"
}

# vaccepted SERVER: the last vclient got its echo through TLS, and the raw
# recording (the same recorder that proves refusals) saw bytes but no
# plaintext.
vaccepted() {
	assert_success
	assert_output "$MARKER"
	assert_equal "$(error_lines)" 0
	[ -s "$BATS_TEST_TMPDIR/$1.raw" ] || fail "recorder saw nothing"
	run grep -c "$MARKER" "$BATS_TEST_TMPDIR/$1.raw"
	assert_output 0
	run cat "$BATS_TEST_TMPDIR/$1.plain"
	assert_output "$MARKER"
}

# staple_server NAME CERT OCSP-FILE|none [s_server args...]: openssl
# s_server -www with CERT (and CERT's key), stapling the response, behind
# a raw recorder; exports NAME_PORT (the recorder's).
staple_server() {
	local name=$1 cert=$2 ocsp=$3 port
	shift 3
	port=$(free_port)
	local args=()
	[ "$ocsp" = none ] || args=(-status_file "$CERTS/$ocsp")
	start_bg timeout 120 openssl s_server -accept "127.0.0.1:$port" -www \
		-cert "$CERTS/$cert.pem" -key "$CERTS/$cert.key" "${args[@]}" \
		"$@" </dev/null >/dev/null \
		2>>"$BATS_TEST_TMPDIR/s_server.log" 3>&-
	wait_port "$port" || fail "openssl s_server did not start"
	vserver "$name" x --forward "$port"
}
