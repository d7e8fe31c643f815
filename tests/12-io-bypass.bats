#!/usr/bin/env bats
# Paths that bypass the obvious hooks: TCP Fast Open, syscall(), and
# processes spawned while a connection is up.

load helpers/common

setup_file() {
	certs
	export CERTS
	tls_server ECHO echo good
	start_server RAW raw-record --record "$BATS_FILE_TMPDIR/raw"
}

teardown_file() {
	stop_servers
}

setup() {
	require_tool python3
	P=$BATS_TEST_TMPDIR/p.conf
	printf 'handshake-timeout = 3\n[r]\nmatch = 127.0.0.1:%s, 127.0.0.1:%s\nca-file = %s\n' \
		"$ECHO_PORT" "$RAW_PORT" "$CERTS/ca.pem" >"$P"
	cat >"$BATS_TEST_TMPDIR/c.py" <<-'PY'
	import ctypes, os, socket, sys
	mode, port = sys.argv[1], int(sys.argv[2])
	if mode == "fastopen":
	    # An implicit connect carrying data: sendto(MSG_FASTOPEN).
	    s = socket.socket()
	    s.sendto(b"FASTOPEN-SECRET", socket.MSG_FASTOPEN, ("127.0.0.1", port))
	    s.shutdown(socket.SHUT_WR)
	    out = b""
	    while True:
	        d = s.recv(100)
	        if not d:
	            break
	        out += d
	    print(out.decode())
	elif mode == "syscall":
	    libc = ctypes.CDLL(None, use_errno=True)
	    s = socket.create_connection(("127.0.0.1", port))
	    SYS_write, SYS_read = 1, 0
	    n = libc.syscall(SYS_write, s.fileno(), b"via-syscall", 11)
	    buf = ctypes.create_string_buffer(11)
	    got = 0
	    while got < 11:
	        r = libc.syscall(SYS_read, s.fileno(),
	                         ctypes.byref(buf, got), 11 - got)
	        if r <= 0:
	            break
	        got += r
	    print(n, buf.raw[:got].decode())
	elif mode == "spawn":
	    s = socket.create_connection(("127.0.0.1", port))
	    s.sendall(b"before ")
	    pid = os.posix_spawn("/bin/true", ["true"], os.environ)
	    os.waitpid(pid, 0)
	    s.sendall(b"after")
	    s.shutdown(socket.SHUT_WR)
	    out = b""
	    while True:
	        d = s.recv(100)
	        if not d:
	            break
	        out += d
	    print(out.decode())
	PY
}

@test "sendto(MSG_FASTOPEN) is upgraded like connect: the data goes through TLS" {
	shim -p "$P" -- python3 "$BATS_TEST_TMPDIR/c.py" fastopen "$ECHO_PORT"
	assert_success
	assert_output "FASTOPEN-SECRET"
}

@test "sendto(MSG_FASTOPEN): the first bytes on the wire are a ClientHello, never the data" {
	rm -f "$BATS_FILE_TMPDIR/raw"
	shim -p "$P" -- python3 "$BATS_TEST_TMPDIR/c.py" fastopen "$RAW_PORT"
	assert_failure
	[ -s "$BATS_FILE_TMPDIR/raw" ] || fail "the listener recorded nothing"
	run od -An -tx1 -N6 "$BATS_FILE_TMPDIR/raw"
	assert_output --regexp '^ *16 03 0[0-3] [0-9a-f]{2} [0-9a-f]{2} 01$'
	run grep -c FASTOPEN-SECRET "$BATS_FILE_TMPDIR/raw"
	assert_output 0
}

@test "syscall(SYS_write/SYS_read) on an upgraded fd goes through the session" {
	shim -p "$P" -- python3 "$BATS_TEST_TMPDIR/c.py" syscall "$ECHO_PORT"
	assert_success
	assert_output "11 via-syscall"
}

@test "posix_spawn while a connection is up: the parent's session carries on" {
	shim -p "$P" -- python3 "$BATS_TEST_TMPDIR/c.py" spawn "$ECHO_PORT"
	assert_success
	assert_output "before after"
}
