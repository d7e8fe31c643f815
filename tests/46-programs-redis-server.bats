#!/usr/bin/env bats
# redis-server, plaintext only, under the shipped policies/redis-server.conf
# (picked by program name from a policy directory, its certificate paths
# as shipped): TLS clients with a certificate are served, every other
# client is dropped before Redis answers it a byte; Redis sees the real
# client address. Both ends under tlsshim too (redis-cli.conf).

load helpers/common

setup_file() {
	require_tool certtool python3 redis-server redis-cli
	export CERTS="$BATS_FILE_TMPDIR/certs"
	gen_certs "$CERTS"
	export PORT=$(free_port)
	# The layout the shipped file names: policies/ and ../certs/.
	export ETC="$BATS_FILE_TMPDIR/etc"
	mkdir -p "$ETC/policies" "$ETC/certs"
	cp "$CERTS/good.pem" "$ETC/certs/redis-server.pem"
	cp "$CERTS/good.key" "$ETC/certs/redis-server.key"
	chmod 600 "$ETC/certs/redis-server.key"
	cp "$CERTS/ca.pem" "$ETC/certs/redis-clients-ca.pem"
	derive_policy "$POLICIES/redis-server.conf" \
		"$ETC/policies/redis-server.conf" \
		-e "s/^accept = 6379\$/accept = $PORT/"
	grep -q "^accept = $PORT\$" "$ETC/policies/redis-server.conf"
	export LOG="$BATS_FILE_TMPDIR/redis.log"
	# Under the sanitizer step its runtimes go first (the launcher keeps
	# them first in LD_PRELOAD).
	TLSSHIM_POLICY= TLSSHIM_POLICY_DIR="$ETC/policies" start_bg \
		env ${TLSSHIM_SAN_PRELOAD:+LD_PRELOAD="$TLSSHIM_SAN_PRELOAD"} \
		"$TLSSHIM" -l info redis-server --bind 127.0.0.1 --port "$PORT" \
		--save '' --appendonly no --dir "$BATS_FILE_TMPDIR" >"$LOG" 2>&1
	wait_tls_port "$PORT"
}

teardown_file() {
	stop_servers
}

# Waits (bounded) until a TLS handshake on 127.0.0.1:$1 completes.
wait_tls_port() {
	local i
	for i in $(seq 1 100); do
		timeout 5 redis-cli --tls --cacert "$CERTS/ca.pem" \
			--cert "$CERTS/noserverauth.pem" \
			--key "$CERTS/noserverauth.key" -h 127.0.0.1 -p "$1" \
			PING 2>/dev/null | grep -q PONG && return 0
		sleep 0.1
	done
	echo "redis-server under tlsshim does not answer on $1" >&2
	cat "$LOG" >&2
	return 1
}

tls_cli() {
	timeout 20 redis-cli --tls --cacert "$CERTS/ca.pem" -h 127.0.0.1 \
		-p "$PORT" "$@"
}

@test "redis-server.conf: the shipped server policy passes --check with its files in place" {
	run timeout 10 "$TLSSHIM" --check "$ETC/policies/redis-server.conf"
	[ "$status" -eq 0 ]
	rm -f "$BATS_TEST_TMPDIR/x.conf"
	cp "$ETC/policies/redis-server.conf" "$BATS_TEST_TMPDIR/x.conf"
	# Elsewhere its relative paths name nothing: an error, not a policy.
	run timeout 10 "$TLSSHIM" --check "$BATS_TEST_TMPDIR/x.conf"
	[ "$status" -eq 1 ]
	[[ "$output" == *"x.conf:"*"cannot read"*"redis-server.pem"* ]]
}

@test "redis-server: redis-cli --tls with a client certificate is served; the log names it" {
	run tls_cli --cert "$CERTS/noserverauth.pem" --key "$CERTS/noserverauth.key" \
		SET served-key over-tls
	[ "$status" -eq 0 ]
	[ "$output" = OK ]
	run tls_cli --cert "$CERTS/noserverauth.pem" --key "$CERTS/noserverauth.key" \
		GET served-key
	[ "$output" = over-tls ]
	grep -q "tlsshim: info: redis-server: rule redis-in 127.0.0.1:[0-9]* -> 127.0.0.1:$PORT: TLS1.3 .*, client verified (localhost)" "$LOG"
}

@test "redis-server: Redis sees the client's own address, not a proxy's" {
	run timeout 20 python3 - "$PORT" "$CERTS" <<'PY'
import socket, ssl, sys
port, d = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=d + "/ca.pem")
ctx.load_cert_chain(d + "/noserverauth.pem", d + "/noserverauth.key")
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), 10),
                    server_hostname="localhost")
s.sendall(b"CLIENT INFO\r\n")
reply = b""
while not reply.endswith(b"\r\n") or reply.count(b"\r\n") < 2:
    b = s.recv(4096)
    if not b:
        break
    reply += b
mine = "%s:%d" % s.getsockname()[:2]
print("mine=" + mine)
print(reply.decode(errors="replace"))
sys.exit(0 if (" addr=" + mine + " ") in reply.decode() else 1)
PY
	[ "$status" -eq 0 ]
}

@test "redis-server: a TLS client without a certificate is dropped; Redis never answers it" {
	run tls_cli PING
	[[ "$output" != *PONG* ]]
	grep -q "tlsshim: error: redis-in 127.0.0.1:[0-9]* -> 127.0.0.1:$PORT: the client sent no certificate (client-ca asks for one)" "$LOG"
}

@test "redis-server: a client certificate from another CA is dropped" {
	run tls_cli --cert "$CERTS/unknownca.pem" --key "$CERTS/unknownca.key" PING
	[[ "$output" != *PONG* ]]
	grep -q "tlsshim: error: redis-in 127.0.0.1:[0-9]* -> 127.0.0.1:$PORT: .*issuer" "$LOG"
}

@test "redis-server: a plaintext client gets no byte of Redis's reply on the wire, and its password is not logged" {
	run timeout 20 python3 - "$PORT" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 10)
s.settimeout(15)
s.sendall(b"AUTH s3cret-redis-pass\r\nPING\r\nINFO\r\n")
got = b""
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
except (ConnectionResetError, socket.timeout):
    pass
print(repr(got))
# Nothing but TLS records (an alert) may come back: never RESP.
bad = b"PONG" in got or b"redis_version" in got or b"-ERR" in got
sys.exit(1 if bad or (got and got[0] not in (0x15, 0x16)) else 0)
PY
	[ "$status" -eq 0 ]
	grep -qF "$PORT: the client does not speak TLS on this port (it sent plaintext starting \"AUTH\"; no more of it is logged)" "$LOG"
	! grep -q s3cret "$LOG"
}

@test "redis-server and redis-cli both under tlsshim: the shipped pair with mutual TLS" {
	local pol=$BATS_TEST_TMPDIR/redis-cli.conf
	cp "$CERTS/noserverauth.key" "$ETC/certs/client.key"
	chmod 600 "$ETC/certs/client.key"
	derive_policy "$POLICIES/redis-cli.conf" "$pol" \
		-e "s/^match = 6379\$/match = $PORT/" \
		-e "/^tls-port = 6380\$/d" \
		-e "s|^# ca-file = .*|ca-file = $CERTS/ca.pem|" \
		-e "s|^# client-cert = .*|client-cert = $CERTS/noserverauth.pem|" \
		-e "s|^# client-key = .*|client-key = $ETC/certs/client.key|"
	grep -q "^client-cert = " "$pol"
	run timeout 20 env ${TLSSHIM_SAN_PRELOAD:+LD_PRELOAD="$TLSSHIM_SAN_PRELOAD"} \
		"$TLSSHIM" -p "$pol" -l info redis-cli -h 127.0.0.1 -p "$PORT" INCR both-ends
	[ "$status" -eq 0 ]
	grep -qx 1 <<<"$output"
	[[ "$output" == *"tlsshim: info: redis-cli: rule redis 127.0.0.1:$PORT (127.0.0.1): TLS1.3"*"verified"* ]]
}
