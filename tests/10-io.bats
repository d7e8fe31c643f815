#!/usr/bin/env bats
# Issues 3 and 4: every libc path of an unmodified program on an upgraded
# socket behaves as on a plain one.  Each C client in tests/io runs
#  - under tlsshim (build as written, and built with _FORTIFY_SOURCE=2)
#    against TLS servers the policy selects, and
#  - without the preload against plain TCP servers: the validation that
#    each check is right about the kernel's semantics.
# Servers: tests/io-helpers/ioserver.py (echo; echo delaying 300 ms before
# the handshake; silent; a certificate for another name, to be refused).

load io-helpers/io

setup_file() {
	io_setup_env
	sh "$BATS_TEST_DIRNAME/helpers/gencerts.sh" "$IO_DIR/certs"
	local c="$IO_DIR/certs"
	export TLS_ECHO=$(io_server tls-echo --cert "$c/good.pem" --key "$c/good.key")
	export TLS_DELAY=$(io_server tls-delay --delay 300 --cert "$c/good.pem" --key "$c/good.key")
	export TLS_SILENT=$(io_server tls-silent --mode silent)
	export TLS_WRONG=$(io_server tls-wrong --cert "$c/wrongname.pem" --key "$c/wrongname.key")
	export PLAIN_ECHO=$(io_server plain-echo --plain)
	export PLAIN_DELAY=$(io_server plain-delay --plain --delay 300)
	export PLAIN_SILENT=$(io_server plain-silent --plain --mode silent)
	export PLAIN_CLOSED=$(free_port)
	export IO_HS_TIMEOUT=2
	cat >"$IO_DIR/policy.conf" <<EOP
log-level = warn
handshake-timeout = $IO_HS_TIMEOUT

[io]
match = 127.0.0.1:$TLS_ECHO, 127.0.0.1:$TLS_DELAY, 127.0.0.1:$TLS_SILENT, 127.0.0.1:$TLS_WRONG
ca-file = $c/ca.pem
EOP
	"$TLSSHIM" --check "$IO_DIR/policy.conf"
}

teardown_file() {
	stop_servers
}

# io_tls CLIENT [SUBTEST...]: the client under tlsshim, TLS servers.
io_tls() {
	local cl=$1
	shift
	IO_MODE=tls IO_PORT=$TLS_ECHO IO_DELAY_PORT=$TLS_DELAY \
	IO_SILENT_PORT=$TLS_SILENT IO_REFUSE_PORT=$TLS_WRONG \
		IO_TIMEOUT=30 run_io 45 "$TLSSHIM" -p "$IO_DIR/policy.conf" -- "$IO_BIN/$cl" "$@"
	[ "$status" -eq 0 ]
	[[ "$output" == *" passed, 0 failed"* ]]
}

# io_plain CLIENT: both builds, no preload, plain TCP servers.
io_plain() {
	local cl
	for cl in "io-$1" "io-$1-fortify"; do
		IO_MODE=plain IO_PORT=$PLAIN_ECHO IO_DELAY_PORT=$PLAIN_DELAY \
		IO_SILENT_PORT=$PLAIN_SILENT IO_REFUSE_PORT=$PLAIN_CLOSED \
			IO_TIMEOUT=30 run_io 45 "$IO_BIN/$cl"
		[ "$status" -eq 0 ]
		[[ "$output" == *" passed, 0 failed"* ]]
	done
}

@test "fortified clients really call the _chk entry points" {
	for s in __read_chk __recv_chk __recvfrom_chk; do
		nm -D "$IO_BIN/io-rw-fortify" | grep -q " U $s" || { echo "io-rw-fortify lacks $s"; false; }
		! nm -D "$IO_BIN/io-rw" | grep -q " U $s" || { echo "io-rw has $s"; false; }
	done
	for s in __poll_chk __ppoll_chk __fdelt_chk; do
		nm -D "$IO_BIN/io-poll-fortify" | grep -q " U $s" || { echo "io-poll-fortify lacks $s"; false; }
	done
}

@test "rw: plain sockets without the preload (validation)" {
	io_plain rw
}

@test "rw: under tlsshim" {
	io_tls io-rw
}

@test "rw: under tlsshim, _FORTIFY_SOURCE=2 build" {
	io_tls io-rw-fortify
}

@test "flags: plain sockets without the preload (validation)" {
	io_plain flags
}

@test "flags: under tlsshim" {
	io_tls io-flags
}

@test "flags: under tlsshim, _FORTIFY_SOURCE=2 build" {
	io_tls io-flags-fortify
}

@test "poll: plain sockets without the preload (validation)" {
	io_plain poll
}

@test "poll: under tlsshim" {
	io_tls io-poll
}

@test "poll: under tlsshim, _FORTIFY_SOURCE=2 build" {
	io_tls io-poll-fortify
}

@test "epoll: plain sockets without the preload (validation)" {
	io_plain epoll
}

@test "epoll: under tlsshim" {
	io_tls io-epoll
}

@test "epoll: under tlsshim, _FORTIFY_SOURCE=2 build" {
	io_tls io-epoll-fortify
}

@test "sockopt: plain sockets without the preload (validation)" {
	io_plain sockopt
}

@test "sockopt: under tlsshim (Nagle for large writes, the program's own view)" {
	io_tls io-sockopt
}

@test "sockopt: under tlsshim, _FORTIFY_SOURCE=2 build" {
	io_tls io-sockopt-fortify
}

@test "fionread: plain sockets without the preload (validation)" {
	io_plain fionread
}

@test "fionread: under tlsshim" {
	io_tls io-fionread
}

@test "fionread: under tlsshim, _FORTIFY_SOURCE=2 build" {
	io_tls io-fionread-fortify
}

@test "lifecycle: plain sockets without the preload (validation)" {
	io_plain lifecycle
}

@test "lifecycle: under tlsshim" {
	io_tls io-lifecycle
}

@test "lifecycle: under tlsshim, _FORTIFY_SOURCE=2 build" {
	io_tls io-lifecycle-fortify
}

@test "fork: plain sockets without the preload (validation)" {
	io_plain fork
}

@test "fork: under tlsshim" {
	io_tls io-fork
}

@test "fork: under tlsshim, _FORTIFY_SOURCE=2 build" {
	io_tls io-fork-fortify
}

@test "sendfile: plain sockets without the preload (validation)" {
	io_plain sendfile
}

@test "sendfile: under tlsshim" {
	io_tls io-sendfile
}

@test "sendfile: under tlsshim, _FORTIFY_SOURCE=2 build" {
	io_tls io-sendfile-fortify
}

@test "stdio: plain sockets without the preload (validation)" {
	io_plain stdio
}

@test "stdio: under tlsshim" {
	io_tls io-stdio
}

@test "stdio: under tlsshim, _FORTIFY_SOURCE=2 build" {
	io_tls io-stdio-fortify
}

@test "threads: plain sockets without the preload (validation)" {
	io_plain threads
}

@test "threads: under tlsshim" {
	io_tls io-threads
}

@test "threads: under tlsshim, _FORTIFY_SOURCE=2 build" {
	io_tls io-threads-fortify
}

@test "nonblock: plain sockets without the preload (validation)" {
	io_plain nonblock
}

@test "nonblock: under tlsshim" {
	io_tls io-nonblock
}

@test "nonblock: under tlsshim, _FORTIFY_SOURCE=2 build" {
	io_tls io-nonblock-fortify
}
