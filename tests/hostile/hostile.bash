# For tests/5*-hostile*.bats, after helpers/common.
HOSTILE=$BATS_TEST_DIRNAME/hostile

# hostile_server NAME MODE [hostile.py args]: exports NAME_PORT; the PID
# goes where stop_servers finds it. Waits at most 10 s for the port.
hostile_server() {
	local name=$1 mode=$2
	shift 2
	background_server "$name" python3 "$HOSTILE/hostile.py" \
		--mode "$mode" --port-file "$BATS_FILE_TMPDIR/$name.port" \
		--cert "$CERTS/good.pem" --key "$CERTS/good.key" \
		--max-seconds 300 "$@"
}

# hostile_policy PORT: one rule for 127.0.0.1:PORT, handshake-timeout 2 s.
hostile_policy() {
	write_policy "$P" <<-EOF2
	handshake-timeout = 2
	[hostile]
	match = 127.0.0.1:$1
	ca-file = $CERTS/ca.pem
	EOF2
}

# client PORT MODE [LIMIT]: the plain client under the launcher.
client() {
	shim -p "$P" -- python3 "$HOSTILE/client.py" 127.0.0.1 "$@"
}

# No crash (no death by signal), no hang (timeout's 124).
no_crash_no_hang() {
	[ "$status" -lt 124 ] ||
		fail "client ended with status $status (crash or hang)"
}
