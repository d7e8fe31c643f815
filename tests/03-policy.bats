#!/usr/bin/env bats
# Policy selection, validation and failing closed.

load helpers/common

setup_file() {
	certs
	export CERTS
	tls_server GOOD echo good
	tls_server GOOD6 echo good --host ::1
	start_server PLAIN echo --plain
	start_server PLAIN6 echo --plain --host ::1
}

teardown_file() {
	stop_servers
}

setup() {
	require_tool python3
	P=$BATS_TEST_TMPDIR/p.conf
}

@test "a missing policy refuses every TCP connection, even unmatched" {
	run_client env LD_PRELOAD="$LIB" TLSSHIM_POLICY=/nonexistent/p.conf \
		python3 "$HELPERS/plainclient.py" send 127.0.0.1 "$PLAIN_PORT" x
	assert_failure
	assert_output --partial "Connection refused"
	assert_equal "$(error_lines)" 1
	assert_output --partial "tlsshim: error: invalid policy: /nonexistent/p.conf"
}

@test "an invalid policy fails closed the same way" {
	printf '[r]\nmatch = 99999\n' >"$P"
	run_client env LD_PRELOAD="$LIB" TLSSHIM_POLICY="$P" \
		python3 "$HELPERS/plainclient.py" send 127.0.0.1 "$PLAIN_PORT" x
	assert_failure
	assert_output --partial "Connection refused"
	assert_equal "$(error_lines)" 1
	assert_output --regexp "tlsshim: error: invalid policy: $P:2:[0-9]+: "
}

@test "an invalid policy: a server's accepted connections are over, nothing is sent in plaintext" {
	printf '[in]\naccept = 1\ncert = /nonexistent.pem\n' >"$P"
	local pf=$BATS_TEST_TMPDIR/srv.port
	# A plain server under the broken policy: accepts one client and
	# answers it at once.
	timeout 30 env LD_PRELOAD="$LIB" TLSSHIM_POLICY="$P" python3 -c '
import socket, sys
l = socket.socket()
l.bind(("127.0.0.1", 0))
l.listen(1)
open(sys.argv[1], "w").write(str(l.getsockname()[1]))
c, _ = l.accept()
try:
    c.sendall(b"SERVER-SECRET\n")
    print("sent")
except OSError as e:
    print("send failed", e.errno)
' "$pf" >"$BATS_TEST_TMPDIR/srv.out" 2>&1 &
	local srv=$!
	wait_port_file "$pf" || fail "the server did not start"
	run_client python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 10)
s.settimeout(10)
got = b""
try:
    while True:
        b = s.recv(4096)
        if not b:
            break
        got += b
except OSError:
    pass
print(repr(got))
' "$(cat "$pf")"
	wait "$srv" || true
	cat "$BATS_TEST_TMPDIR/srv.out"
	assert_success
	refute_output --partial SERVER-SECRET
	grep -q "send failed 32" "$BATS_TEST_TMPDIR/srv.out"
	grep -q "tlsshim: error: invalid policy: $P:" "$BATS_TEST_TMPDIR/srv.out"
	grep -q "refusing every TCP connection" "$BATS_TEST_TMPDIR/srv.out"
}

# connects.py: three TCP connects (IPv4, IPv4, IPv6) to a plain server,
# then a UDP connect and an AF_UNIX pair, printing the outcome of each.
connects() {
	cat >"$BATS_TEST_TMPDIR/connects.py" <<-'EOF'
	import errno, socket, sys
	def attempt(what, fam, typ, addr):
	    s = socket.socket(fam, typ)
	    s.settimeout(10)
	    try:
	        s.connect(addr)
	        print(what, "connected")
	    except OSError as e:
	        print(what, errno.errorcode.get(e.errno, e.errno))
	    s.close()
	p4, p6 = int(sys.argv[1]), int(sys.argv[2])
	for i in (1, 2):
	    attempt("tcp4", socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", p4))
	attempt("tcp6", socket.AF_INET6, socket.SOCK_STREAM, ("::1", p6))
	attempt("udp4", socket.AF_INET, socket.SOCK_DGRAM, ("127.0.0.1", p4))
	a, b = socket.socketpair()
	a.sendall(b"unix"); print("unix", b.recv(4).decode())
	EOF
	run_client env LD_PRELOAD="$LIB" "$@" python3 \
		"$BATS_TEST_TMPDIR/connects.py" "$PLAIN_PORT" "$PLAIN6_PORT"
}

@test "failing closed refuses every IP TCP connect, logs once, spares UDP/unix" {
	connects TLSSHIM_POLICY=/nonexistent/p.conf
	assert_success
	assert_line "tcp4 ECONNREFUSED"
	assert_line "tcp6 ECONNREFUSED"
	refute_line "tcp4 connected"
	assert_line "udp4 connected"
	assert_line "unix unix"
	assert_equal "$(error_lines)" 1
	printf 'log-level = loud\n' >"$P"
	connects TLSSHIM_POLICY="$P"
	assert_line "tcp4 ECONNREFUSED"
	assert_line "tcp6 ECONNREFUSED"
	refute_line "tcp4 connected"
	assert_line "udp4 connected"
	assert_equal "$(error_lines)" 1
}

@test "control: without a policy the same connects all succeed" {
	printf '# no rules\n' >"$P"
	connects TLSSHIM_POLICY="$P"
	assert_success
	refute_line "tcp4 ECONNREFUSED"
	assert_line "tcp6 connected"
	assert_equal "$(error_lines)" 0
}

@test "the launcher refuses an invalid policy with path:line:col, exit 2" {
	printf 'log-level = loud\n[r]\nmatch = 1\nfrobnicate = yes\n' >"$P"
	shim -p "$P" -- touch "$BATS_TEST_TMPDIR/ran"
	assert_equal "$status" 2
	[ ! -e "$BATS_TEST_TMPDIR/ran" ] || fail "the command ran"
	assert_output --partial "$P:1:"
	assert_output --partial "$P:4:1: unknown key 'frobnicate'"
}

@test "--check: 0 for a valid policy, 1 and every error for a bad one" {
	printf '[r]\nmatch = 443\nca-file = %s\n' "$CERTS/ca.pem" >"$P"
	shim --check "$P"
	assert_success
	assert_output ""
	printf '[r]\nsni = x\n[s]\nmatch = 1\nca-file = /nonexistent.pem\n' >"$P"
	shim --check "$P"
	assert_equal "$status" 1
	assert_output --partial "$P:1:"
	assert_output --partial "$P:5:"
}

@test "an empty ca-file is a policy error (GnuTLS would load 0 anchors)" {
	: >"$BATS_TEST_TMPDIR/empty.pem"
	printf '[r]\nmatch = 443\nca-file = empty.pem\n' >"$P"
	shim --check "$P"
	assert_equal "$status" 1
	assert_output --partial "$P:3:"
}

@test "no sni: the IP literal is verified against the IP SAN (IPv4)" {
	printf '[r]\nmatch = 127.0.0.1:%s\nca-file = %s\n' "$GOOD_PORT" \
		"$CERTS/ca.pem" >"$P"
	shim -p "$P" -- python3 "$HELPERS/plainclient.py" send 127.0.0.1 \
		"$GOOD_PORT" ipv4-literal
	assert_success
	assert_output "ipv4-literal"
}

@test "IPv6: [::1] verified against its IP SAN" {
	printf '[r]\nmatch = [::1]:%s\nca-file = %s\n' "$GOOD6_PORT" \
		"$CERTS/ca.pem" >"$P"
	shim -p "$P" -- python3 "$HELPERS/plainclient.py" send ::1 \
		"$GOOD6_PORT" ipv6-literal
	assert_success
	assert_output "ipv6-literal"
}

@test "policy found by program name in TLSSHIM_POLICY_DIR" {
	mkdir -p "$BATS_TEST_TMPDIR/dir"
	printf '[r]\nmatch = 127.0.0.1:%s\nca-file = %s\n' "$GOOD_PORT" \
		"$CERTS/ca.pem" >"$BATS_TEST_TMPDIR/dir/python3.conf"
	run_client env LD_PRELOAD="$LIB" TLSSHIM_POLICY_DIR="$BATS_TEST_TMPDIR/dir" \
		python3 "$HELPERS/plainclient.py" send 127.0.0.1 "$GOOD_PORT" by-name
	assert_success
	assert_output "by-name"
	# Proof it went through TLS: the same client without the policy dir
	# speaks plaintext to a TLS server and gets nothing sensible back.
	run_client env LD_PRELOAD="$LIB" TLSSHIM_POLICY_DIR=/nonexistent \
		python3 "$HELPERS/plainclient.py" send 127.0.0.1 "$GOOD_PORT" by-name
	refute_output "by-name"
}

@test "the current directory is never searched" {
	mkdir -p "$BATS_TEST_TMPDIR/cwd"
	printf '[r]\nmatch = 99999\n' >"$BATS_TEST_TMPDIR/cwd/python3.conf"
	printf 'broken\n' >"$BATS_TEST_TMPDIR/cwd/default.conf"
	cd "$BATS_TEST_TMPDIR/cwd"
	run_client env LD_PRELOAD="$LIB" TLSSHIM_POLICY_DIR=/nonexistent \
		python3 "$HELPERS/plainclient.py" send 127.0.0.1 "$PLAIN_PORT" plain
	assert_success
	assert_output "plain"
}
