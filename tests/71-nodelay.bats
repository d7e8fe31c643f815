#!/usr/bin/env bats
# TCP_NODELAY around the handshake (src/common/nodelay.c): tlsshim turns Nagle
# off for the handshake and pushes the first record out, but the program
# always sees its own setting, before and after its first write, and a
# program that turned Nagle off keeps it off.

load helpers/common

setup_file() {
	certs
	export CERTS
	tls_server GOOD echo good
}

teardown_file() {
	stop_servers
}

setup() {
	require_tool python3
	P=$BATS_TEST_TMPDIR/p.conf
	printf '[r]\nmatch = 127.0.0.1:%s\nsni = localhost\nca-file = %s\n' \
		"$GOOD_PORT" "$CERTS/ca.pem" >"$P"
}

# nodelay SET: connect (after setting TCP_NODELAY=SET when SET is 0 or 1),
# print the option after connect, after the first write and echo, after
# the second.
nodelay() {
	run timeout 30 env LD_PRELOAD="$LIB" TLSSHIM_POLICY="$P" \
		TLSSHIM_LOG=info python3 -c '
import socket, sys
s = socket.socket()
if sys.argv[2] != "-":
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(sys.argv[2]))
g = lambda: s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
s.connect(("127.0.0.1", int(sys.argv[1])))
a = g()
s.sendall(b"x"); assert s.recv(1) == b"x"
b = g()
s.sendall(b"y"); assert s.recv(1) == b"y"
print("nodelay", int(a), int(b), int(g()))
' "$GOOD_PORT" "$1"
}

@test "a program that never set TCP_NODELAY sees it off, before and after its first write" {
	nodelay -
	assert_success
	assert_output --partial "verified"
	assert_line "nodelay 0 0 0"
}

@test "a program that turned TCP_NODELAY off keeps it off" {
	nodelay 0
	assert_success
	assert_line "nodelay 0 0 0"
}

@test "a program that turned TCP_NODELAY on keeps it on" {
	nodelay 1
	assert_success
	assert_line "nodelay 1 1 1"
}

@test "TCP_NODELAY set during an asynchronous handshake is kept" {
	run timeout 30 env LD_PRELOAD="$LIB" TLSSHIM_POLICY="$P" \
		TLSSHIM_LOG=info python3 -c '
import errno, select, socket, sys
s = socket.socket()
s.setblocking(False)
assert s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == errno.EINPROGRESS
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
while not select.select([], [s], [], 10)[1]:
    pass
assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
g = lambda: s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
a = g()
s.setblocking(True)
s.sendall(b"x"); assert s.recv(1) == b"x"
print("nodelay", int(a), int(g()))
' "$GOOD_PORT"
	assert_success
	assert_output --partial "verified"
	assert_line "nodelay 1 1"
}
