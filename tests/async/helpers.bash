# Shared by tests/6*-async*.bats (after helpers/common).
ASYNC=$BATS_TEST_DIRNAME/async
PROBE=${ASYNC_PROBE:-$BUILD/tests/async/async_probe}

# delay_server NAME CERTNAME [delayserver.py args]: the delaying TLS echo
# server of tests/async; exports NAME_PORT, killed by stop_servers.
delay_server() {
	local name=$1 cert=$2
	shift 2
	background_server "$name" python3 "$ASYNC/delayserver.py" \
		--port-file "$BATS_FILE_TMPDIR/$name.port" --max-seconds 300 \
		--cert "$CERTS/$cert.pem" --key "$CERTS/$cert.key" "$@"
}
