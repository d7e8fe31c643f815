# Shared by tests/10-io.bats and tests/11-programs.bats, on top of the one
# helper library (tests/helpers/common.bash): servers on free loopback
# ports (port files, bounded wait), killed by PID.
load helpers/common

io_setup_env() {
	export TLSSHIM IO_BIN="$BUILD/tests/io"
	export IO_HELPERS="$BATS_TEST_DIRNAME/io-helpers"
	export IO_DIR="$BATS_FILE_TMPDIR"
	[ -x /usr/bin/python3 ] && : ${PYTHON:=/usr/bin/python3}
	export PYTHON=${PYTHON:-python3}
	[ -x "$TLSSHIM" ] || { echo "no launcher at $TLSSHIM (build first)" >&2; return 1; }
}

# io_server NAME ARGS...: tests/io-helpers/ioserver.py; prints the port.
io_server() {
	local name=$1
	shift
	serve_bg "$name" "$IO_DIR/$name.port" \
		"$PYTHON" "$IO_HELPERS/ioserver.py" --port-file "$IO_DIR/$name.port" "$@" &&
		cat "$IO_DIR/$name.port"
}

# run_io TIMEOUT CMD...: run with a timeout, show the output, keep status.
run_io() {
	local t=$1
	shift
	run timeout -k 5 "$t" "$@"
	printf '%s\n' "$output"
	if [ "$status" -eq 124 ]; then
		echo "timed out after ${t}s"
	elif [ "$status" -ne 0 ]; then
		echo "exit status $status"
	fi
}
