# Shared by tests/6*-async*.bats (after helpers/common).
ASYNC=$BATS_TEST_DIRNAME/async
PROBE=${ASYNC_PROBE:-$BUILD/tests/async/async_probe}

# delay_server NAME CERTNAME [delayserver.py args]: the delaying TLS echo
# server of tests/async; exports NAME_PORT, killed by stop_servers.
delay_server() {
	local name=$1 cert=$2
	shift 2
	local pf=$BATS_FILE_TMPDIR/$name.port
	rm -f "$pf"
	python3 "$ASYNC/delayserver.py" --port-file "$pf" --max-seconds 300 \
		--cert "$CERTS/$cert.pem" --key "$CERTS/$cert.key" "$@" 3>&- \
		2>>"$BATS_FILE_TMPDIR/$name.log" &
	echo $! >>"$BATS_FILE_TMPDIR/pids"
	local i
	for i in $(seq 100); do
		[ -s "$pf" ] && break
		sleep 0.1
	done
	[ -s "$pf" ] || fail "server $name did not start"
	eval "${name}_PORT=\$(cat \"\$pf\")"
	export "${name}_PORT"
}
