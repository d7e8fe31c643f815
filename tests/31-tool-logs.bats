#!/usr/bin/env bats
# Logs end to end: info lines per connection, debug decisions, log-file,
# log = syslog, and never key material.

load helpers/common

setup_file() {
	require_tool certtool python3 curl
	export CERTS="$BATS_FILE_TMPDIR/certs"
	gen_certs "$CERTS"
	start_tls_server "$CERTS" "$BATS_FILE_TMPDIR/good.port" srv
	export GOOD=$(cat "$BATS_FILE_TMPDIR/good.port")
}

teardown_file() {
	stop_servers
}

policy() {
	cat >"$BATS_TEST_TMPDIR/p.conf" <<P
$1
[web]
match = 127.0.0.1:1080
sni = localhost
ca-file = $CERTS/ca.pem
tls-port = $GOOD
P
}

@test "info: one line per connection with program, rule, destination, name, version, cipher; bytes at close" {
	policy "log-level = info"
	run timeout 20 "$TLSSHIM" -p "$BATS_TEST_TMPDIR/p.conf" curl -sS http://127.0.0.1:1080/
	[ "$status" -eq 0 ]
	[[ "$output" =~ tlsshim:\ info:\ curl:\ rule\ web\ 127\.0\.0\.1:1080\ \(localhost\):\ TLS1\.[23]\ [A-Z0-9-]+,\ verified ]]
	[[ "$output" =~ tlsshim:\ info:\ web\ 127\.0\.0\.1:1080\ \(localhost\):\ closed,\ [1-9][0-9]*\ bytes\ out,\ [1-9][0-9]*\ bytes\ in ]]
}

@test "debug: the rule chosen and where the verified name came from" {
	policy ""
	run timeout 20 "$TLSSHIM" -p "$BATS_TEST_TMPDIR/p.conf" -l debug curl -sS http://127.0.0.1:1080/
	[ "$status" -eq 0 ]
	[[ "$output" == *"tlsshim: debug: 127.0.0.1:1080: rule web, verifying localhost (sni from the rule)"* ]]
}

@test "log-file: the lines go to the file, not to the program's stderr" {
	policy "log-level = info
log-file = tlsshim.log"
	run timeout 20 "$TLSSHIM" -p "$BATS_TEST_TMPDIR/p.conf" curl -sS http://127.0.0.1:1080/
	[ "$status" -eq 0 ]
	[ "$output" = "hello over tls" ]
	grep -q "tlsshim: info: curl: rule web 127.0.0.1:1080 (localhost): TLS1" "$BATS_TEST_TMPDIR/tlsshim.log"
	grep -q "closed, .* bytes out, .* bytes in" "$BATS_TEST_TMPDIR/tlsshim.log"
}

@test "log = syslog: one datagram per line to the syslog socket" {
	policy "log-level = info
log = syslog"
	local sock=$BATS_TEST_TMPDIR/log out=$BATS_TEST_TMPDIR/syslog.out
	start_bg timeout 30 python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
open(sys.argv[2] + ".ready", "w").close()
with open(sys.argv[2], "w") as f:
    for _ in range(2):
        f.write(s.recv(4096).decode() + "\n")
        f.flush()
' "$sock" "$out"
	for i in $(seq 1 50); do [ -e "$out.ready" ] && break; sleep 0.1; done
	TLSSHIM_SYSLOG_SOCKET=$sock run timeout 20 "$TLSSHIM" -p "$BATS_TEST_TMPDIR/p.conf" curl -sS http://127.0.0.1:1080/
	[ "$status" -eq 0 ]
	[ "$output" = "hello over tls" ]
	for i in $(seq 1 50); do [ "$(wc -l <"$out")" -ge 2 ] && break; sleep 0.1; done
	grep -Eq '^<14>tlsshim\[[0-9]+\]: curl: info: curl: rule web 127.0.0.1:1080' "$out"
	grep -Eq '^<14>tlsshim\[[0-9]+\]: curl: info: web .* closed' "$out"
}

@test "never key material: SSLKEYLOGFILE gets nothing, debug logs no secrets" {
	policy ""
	SSLKEYLOGFILE=$BATS_TEST_TMPDIR/keys run timeout 20 "$TLSSHIM" -p "$BATS_TEST_TMPDIR/p.conf" -l debug \
		python3 -c 'import socket; s=socket.create_connection(("127.0.0.1",1080)); s.sendall(b"GET / HTTP/1.0\r\n\r\n"); print(b"".join(iter(lambda: s.recv(4096), b"")))'
	[ "$status" -eq 0 ]
	[[ "$output" == *"hello over tls"* ]]
	[ ! -s "$BATS_TEST_TMPDIR/keys" ]
	[[ "$output" != *SECRET* ]]
	[[ "$output" != *CLIENT_RANDOM* ]]
}

@test "a program that closed fd 2 still gets its refusal (ECONNREFUSED), and does not die" {
	policy "log-level = debug"
	sed -i 's/^sni = .*/sni = other.invalid/' "$BATS_TEST_TMPDIR/p.conf"
	run timeout 20 "$TLSSHIM" -p "$BATS_TEST_TMPDIR/p.conf" python3 -c '
import os, socket, errno
os.close(2)
try:
    socket.create_connection(("127.0.0.1", 1080))
    print("connected")
except OSError as e:
    print("refused" if e.errno == errno.ECONNREFUSED else "errno %d" % e.errno)'
	[ "$status" -eq 0 ]
	[ "${lines[-1]}" = refused ]
}

@test "info: a tls-port rule names both ports: the one asked for and the TLS port connected" {
	policy "log-level = info"
	run timeout 20 "$TLSSHIM" -p "$BATS_TEST_TMPDIR/p.conf" curl -sS http://127.0.0.1:1080/
	[ "$status" -eq 0 ]
	[[ "$output" == *"rule web 127.0.0.1:1080 (localhost): TLS1."*", verified (TLS port $GOOD)"* ]]
}

@test "info: a refused connection is logged once, never as closed" {
	cat >"$BATS_TEST_TMPDIR/p.conf" <<P
log-level = info
[web]
match = 127.0.0.1:1080
sni = wrong.example
ca-file = $CERTS/ca.pem
tls-port = $GOOD
P
	run timeout 20 "$TLSSHIM" -p "$BATS_TEST_TMPDIR/p.conf" curl -sS http://127.0.0.1:1080/
	[ "$status" -ne 0 ]
	[ "$(printf '%s\n' "$output" | grep -c '^tlsshim: error: web 127.0.0.1:1080 (wrong.example): ')" -eq 1 ]
	[[ "$output" != *"closed,"* ]]
	[[ "$output" != *"open at exit"* ]]
}

@test "info: a program that exits with the connection open gets its byte counts logged at exit" {
	policy "log-level = info"
	run timeout 20 "$TLSSHIM" -p "$BATS_TEST_TMPDIR/p.conf" python3 -c '
import os, socket
s = socket.create_connection(("127.0.0.1", 1080))
s.sendall(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
print(s.recv(100)[:12].decode(), flush=True)
os.dup(s.fileno())  # still open when the interpreter closes its own
'
	[ "$status" -eq 0 ]
	[[ "$output" == *"HTTP/1.1 200"* ]]
	[[ "$output" =~ tlsshim:\ info:\ web\ 127\.0\.0\.1:1080\ \(localhost\):\ open\ at\ exit,\ [1-9][0-9]*\ bytes\ out,\ [1-9][0-9]*\ bytes\ in ]]
}
