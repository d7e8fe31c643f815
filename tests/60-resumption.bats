#!/usr/bin/env bats
# TLS session resumption (src/tls_cache.c): a second connect to the same
# server under the same rule resumes; a session is never offered to a rule
# verifying another name (GnuTLS would resume it without verifying the
# certificate again); a session the server refuses costs one full
# handshake, never the connection.
#
# Server: bench/bench-server (GnuTLS, TLS 1.3, issues session tickets), with
# a certificate for a.test only. BUILD_DIR is set by tests/meson.build.

setup_file() {
	: "${BUILD_DIR:?BUILD_DIR must name the meson build directory}"
	export LIB=$BUILD_DIR/src/libtlsshim.so
	export SERVER=$BUILD_DIR/bench/bench-server
	export CLIENT=$BUILD_DIR/bench/bench-client
	command -v certtool >/dev/null || {
		echo "certtool (gnutls-bin) is required" >&2
		return 1
	}
	local d=$BATS_FILE_TMPDIR
	printf 'cn = "resumption test CA"\nca\ncert_signing_key\nexpiration_days = 2\n' >"$d/ca.tmpl"
	printf 'cn = "a.test"\ndns_name = "a.test"\ntls_www_server\nsigning_key\nexpiration_days = 2\n' >"$d/srv.tmpl"
	certtool --generate-privkey --key-type=ecdsa --curve=secp256r1 \
		--outfile "$d/ca.key" 2>/dev/null
	certtool --generate-self-signed --load-privkey "$d/ca.key" \
		--template "$d/ca.tmpl" --outfile "$d/ca.pem" 2>/dev/null
	certtool --generate-privkey --key-type=ecdsa --curve=secp256r1 \
		--outfile "$d/srv.key" 2>/dev/null
	certtool --generate-certificate --load-privkey "$d/srv.key" \
		--load-ca-certificate "$d/ca.pem" --load-ca-privkey "$d/ca.key" \
		--template "$d/srv.tmpl" --outfile "$d/srv.pem" 2>/dev/null
	start "$d/tickets" -c "$d/srv.pem" -k "$d/srv.key" -m echo
	start "$d/rotate" -c "$d/srv.pem" -k "$d/srv.key" -m echo -R
}

# start NAME ARGS...: a server on a free port, its port in NAME.port.
start() {
	local name=$1
	shift
	"$SERVER" -p "$name.port" "$@" 3>&- &
	echo $! >"$name.pid"
	local i
	for i in $(seq 100); do
		[ -s "$name.port" ] && return 0
		sleep 0.05
	done
	echo "server $name did not start" >&2
	return 1
}

teardown_file() {
	local f
	for f in "$BATS_FILE_TMPDIR"/*.pid; do
		[ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null
	done
	return 0
}

port() { cat "$BATS_FILE_TMPDIR/$1.port"; }

# policy FILE SERVER: rule a (sni a.test) for the server's own port, rule
# b (sni b.test) for 127.0.0.1:1, which tls-port sends to the same server.
policy() {
	cat >"$1" <<-EOF
	[a]
	match = 127.0.0.1:$(port "$2")
	sni = a.test
	ca-file = $BATS_FILE_TMPDIR/ca.pem

	[b]
	match = 127.0.0.1:1
	sni = b.test
	ca-file = $BATS_FILE_TMPDIR/ca.pem
	tls-port = $(port "$2")
	EOF
}

shim() {
	LD_PRELOAD=$LIB TLSSHIM_POLICY=$POLICY TLSSHIM_LOG=info \
		timeout 30 "$@"
}

# One process, connects in order to each port given; per connect a line
# "ok" (one byte echoed) or the errno name.
multi() {
	shim python3 -c '
import errno, socket, sys
for p in sys.argv[1:]:
    s = socket.socket()
    s.settimeout(10)
    try:
        s.connect(("127.0.0.1", int(p)))
        s.sendall(b"x")
        print("ok" if s.recv(1) == b"x" else "bad echo", flush=True)
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e)), flush=True)
    s.close()
' "$@"
}

@test "the second and later connects resume the session" {
	POLICY=$BATS_TEST_TMPDIR/p.conf
	policy "$POLICY" tickets
	run shim "$CLIENT" connect 3 127.0.0.1 "$(port tickets)"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(grep -c 'TLS1.3 [^,]*, verified' <<<"$output")" -eq 3 ]
	[ "$(grep -c ' resumed, verified' <<<"$output")" -eq 2 ]
}

@test "a session verified for a.test never resumes for a rule verifying b.test" {
	POLICY=$BATS_TEST_TMPDIR/p.conf
	policy "$POLICY" tickets
	local p
	p=$(port tickets)
	run multi "$p" 1 "$p"
	echo "$output"
	[ "$status" -eq 0 ]
	# a.test: full handshake; b.test: refused (the certificate does not
	# name it), not resumed; a.test again: resumes the ticket b left.
	[ "$(grep -v '^tlsshim:' <<<"$output" | tr '\n' ' ')" = "ok ECONNREFUSED ok " ]
	grep -q "tlsshim: error: b 127.0.0.1:1 (b.test): .*name in the certificate does not match" <<<"$output"
	! grep -q 'b.test.*resumed' <<<"$output"
	[ "$(grep -c ' resumed, verified' <<<"$output")" -eq 1 ]
	grep -q "rule a 127.0.0.1:$p (a.test): TLS1.3 .* resumed, verified" <<<"$output"
}

@test "a session the server refuses falls back to one full handshake" {
	POLICY=$BATS_TEST_TMPDIR/p.conf
	policy "$POLICY" rotate
	run shim "$CLIENT" connect 3 127.0.0.1 "$(port rotate)"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(grep -c 'TLS1.3 AES-256-GCM, verified' <<<"$output")" -eq 3 ]
	! grep -q resumed <<<"$output"
}
