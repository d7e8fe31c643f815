# Shared by the bats suites: paths, tools, servers on free loopback ports,
# clients under a timeout.
BUILD=${TLSSHIM_BUILD_DIR:-$BATS_TEST_DIRNAME/../build}
TLSSHIM=$BUILD/src/tlsshim
LIB=$BUILD/src/libtlsshim.so
HELPERS=$BATS_TEST_DIRNAME/helpers

# The sanitizer build in CI (tests/bootstrap.sh step 3): the runtime must
# come first in every LD_PRELOAD: where a test sets LD_PRELOAD=$LIB, and
# for the launcher (shim), which keeps it first. Only there: tools such as
# certtool are not run with it.
if [ -n "${TLSSHIM_SAN_PRELOAD:-}" ]; then
	LIB="$TLSSHIM_SAN_PRELOAD $LIB"
fi

load /usr/lib/bats/bats-support/load
load /usr/lib/bats/bats-assert/load

# A test that needs a missing tool fails; it never skips.
require_tool() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 ||
			fail "required tool '$t' is not installed"
	done
}

# Certificates once per file, in the file's temporary directory.
certs() {
	require_tool certtool python3 timeout
	CERTS=$BATS_FILE_TMPDIR/certs
	sh "$HELPERS/gencerts.sh" "$CERTS" ||
		fail "gencerts.sh failed in $CERTS"
}

# wait_port_file FILE: until a server published its port there (10 s).
wait_port_file() {
	local i
	for i in $(seq 100); do
		[ -s "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

# background_server NAME CMD...: runs CMD, a server that writes its port
# to $BATS_FILE_TMPDIR/NAME.port (its stderr goes to NAME.log), records
# the PID for stop_servers and exports NAME_PORT. Waits at most 10 s for
# the port.
background_server() {
	local name=$1
	shift
	local pf=$BATS_FILE_TMPDIR/$name.port
	rm -f "$pf"
	"$@" 3>&- 2>>"$BATS_FILE_TMPDIR/$name.log" &
	echo $! >>"$BATS_FILE_TMPDIR/pids"
	wait_port_file "$pf" || fail "server $name did not start"
	eval "${name}_PORT=\$(cat \"\$pf\")"
	export "${name}_PORT"
}

# start_server NAME MODE [tlsserver.py args...]: exports NAME_PORT and
# records the PID for stop_servers. Waits at most 10 s for the port.
start_server() {
	local name=$1 mode=$2
	shift 2
	background_server "$name" python3 "$HELPERS/tlsserver.py" \
		--mode "$mode" --port-file "$BATS_FILE_TMPDIR/$name.port" \
		--max-seconds 300 "$@"
}

# tls_server NAME MODE CERTNAME [args]: a TLS server with CERTNAME.pem.
tls_server() {
	local name=$1 mode=$2 cert=$3
	shift 3
	start_server "$name" "$mode" --cert "$CERTS/$cert.pem" \
		--key "$CERTS/$cert.key" "$@"
}

stop_servers() {
	local pid
	[ -f "$BATS_FILE_TMPDIR/pids" ] || return 0
	while read -r pid; do
		kill "$pid" 2>/dev/null || true
	done <"$BATS_FILE_TMPDIR/pids"
	rm -f "$BATS_FILE_TMPDIR/pids"
}

# write_policy FILE: the policy text comes on stdin.
write_policy() {
	cat >"$1"
}

# Every client runs under a timeout.
run_client() {
	run timeout 30 "$@"
}

shim() {
	run timeout 30 env ${TLSSHIM_SAN_PRELOAD:+LD_PRELOAD="$TLSSHIM_SAN_PRELOAD"} \
		"$TLSSHIM" "$@"
}

# The number of tlsshim error lines in $output.
error_lines() {
	printf '%s\n' "$output" | grep -c '^tlsshim: error: ' || true
}
