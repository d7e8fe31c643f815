#!/usr/bin/env bats
# GnuTLS is mapped only by a process that made a matched connect.

load helpers/common

setup_file() {
	certs
	export CERTS
	tls_server GOOD echo good
	start_server PLAIN echo --plain
}

teardown_file() {
	stop_servers
}

setup() {
	require_tool python3
	P=$BATS_TEST_TMPDIR/p.conf
	printf '[r]\nmatch = 127.0.0.1:%s\nca-file = %s\n' "$GOOD_PORT" \
		"$CERTS/ca.pem" >"$P"
}

maps_after() { # PORT: connect (and echo) then print our own maps
	cat >"$BATS_TEST_TMPDIR/m.py" <<-'EOF'
	import socket, sys
	port = int(sys.argv[1])
	if port:
	    s = socket.create_connection(("127.0.0.1", port))
	    s.sendall(b"x"); assert s.recv(1) == b"x"
	print(open("/proc/self/maps").read())
	EOF
	shim -p "$P" -- python3 "$BATS_TEST_TMPDIR/m.py" "$1"
	assert_success
}

@test "a process that connects nowhere maps the preload, not GnuTLS" {
	maps_after 0
	assert_output --partial "libtlsshim.so"
	refute_output --partial "libgnutls"
	refute_output --partial "libtlsshim-engine"
}

@test "an unmatched connect does not load GnuTLS either" {
	maps_after "$PLAIN_PORT"
	assert_output --partial "libtlsshim.so"
	refute_output --partial "libgnutls"
}

@test "a matched connect loads the engine and GnuTLS (control)" {
	maps_after "$GOOD_PORT"
	assert_output --partial "libtlsshim-engine.so"
	assert_output --partial "libgnutls"
}

@test "a shell and its children never map GnuTLS" {
	shim -p "$P" -- sh -c 'cat /proc/$$/maps; cat /proc/self/maps'
	assert_success
	assert_output --partial "libtlsshim.so"
	refute_output --partial "libgnutls"
}
