#!/usr/bin/env bats
# GnuTLS is mapped only by a process that made a matched connect, and the
# policy is read only when first needed (src/preload/preload.c, src/preload/hooks/hook_priv.c),
# yet as it was named at start: the environment and working directory
# the program had then, the files it could read before chroot.

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

@test "a process that never connects never opens its policy" {
	# A FIFO blocks the opener until a writer comes: reading the policy
	# at start would hang here.
	mkfifo "$BATS_TEST_TMPDIR/fifo"
	run timeout 10 env LD_PRELOAD="$LIB" \
		TLSSHIM_POLICY="$BATS_TEST_TMPDIR/fifo" true
	assert_success
}

# lazy_client: connect to the TLS echo server by IP after whatever the
# script's first argument does; a plaintext connect would get no echo.
lazy_client() {
	cat >"$BATS_TEST_TMPDIR/c.py" <<-'EOF'
	import encodings.idna, os, socket, sys  # imported before any chroot
	what, port = sys.argv[1], int(sys.argv[2])
	if what == "clear-env":
	    os.environ.clear()
	    os.chdir("/")
	    assert "TLSSHIM_POLICY" not in os.environ
	elif what in ("chroot", "raw-chroot"):
	    d = sys.argv[3]
	    if what == "chroot":
	        os.chroot(d)
	    else:
	        # syscall(2) itself, as a program bypassing libc's chroot
	        import ctypes, platform
	        nr = {"x86_64": 161, "aarch64": 51}[platform.machine()]
	        libc = ctypes.CDLL(None, use_errno=True)
	        assert libc.syscall(nr, d.encode()) == 0, ctypes.get_errno()
	    os.chdir("/")
	    assert not os.path.exists(sys.argv[4])
	s = socket.create_connection(("127.0.0.1", port), timeout=10)
	s.sendall(b"ping")
	got = b""
	while len(got) < 4:
	    b = s.recv(4 - len(got))
	    if not b:
	        break
	    got += b
	print("echo:", got.decode())
	EOF
}

@test "the policy named at start holds after the program clears its environment and changes directory" {
	lazy_client
	cp "$P" "$BATS_TEST_TMPDIR/rel.conf"
	cd "$BATS_TEST_TMPDIR"
	run timeout 30 env LD_PRELOAD="$LIB" TLSSHIM_POLICY=rel.conf \
		TLSSHIM_LOG=info python3 c.py clear-env "$GOOD_PORT"
	assert_success
	assert_output --partial "echo: ping"
	assert_output --partial "verified"
}

@test "a process that chroots before its first connect keeps its policy and engine" {
	require_tool unshare
	lazy_client
	mkdir "$BATS_TEST_TMPDIR/jail"
	# unshare -r: root in a user namespace of our own, allowed to chroot.
	run timeout 30 unshare -r env LD_PRELOAD="$LIB" TLSSHIM_POLICY="$P" \
		TLSSHIM_LOG=info python3 "$BATS_TEST_TMPDIR/c.py" chroot \
		"$GOOD_PORT" "$BATS_TEST_TMPDIR/jail" "$P"
	assert_success
	assert_output --partial "echo: ping"
	assert_output --partial "verified"
}

@test "a process that chroots through syscall(2) before its first connect keeps them too" {
	require_tool unshare
	lazy_client
	mkdir "$BATS_TEST_TMPDIR/jail"
	run timeout 30 unshare -r env LD_PRELOAD="$LIB" TLSSHIM_POLICY="$P" \
		TLSSHIM_LOG=info python3 "$BATS_TEST_TMPDIR/c.py" raw-chroot \
		"$GOOD_PORT" "$BATS_TEST_TMPDIR/jail" "$P"
	assert_success
	assert_output --partial "echo: ping"
	assert_output --partial "verified"
}
