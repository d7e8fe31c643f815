# Shared by tests/10-io.bats and tests/11-programs.bats.
# Servers on free loopback ports (port files, bounded wait), killed by PID.

io_setup_env() {
	B=${TLSSHIM_BUILD:-$BATS_TEST_DIRNAME/../build}
	export TLSSHIM="$B/src/tlsshim" IO_BIN="$B/tests/io"
	export IO_HELPERS="$BATS_TEST_DIRNAME/io-helpers"
	export IO_DIR="$BATS_FILE_TMPDIR"
	[ -x /usr/bin/python3 ] && : ${PYTHON:=/usr/bin/python3}
	export PYTHON=${PYTHON:-python3}
	[ -x "$TLSSHIM" ] || { echo "no launcher at $TLSSHIM (build first)" >&2; return 1; }
}

# require_tool NAME: a missing tool fails the test loudly, never skips.
require_tool() {
	command -v "$1" >/dev/null 2>&1 || {
		echo "required tool '$1' is not installed (tests/bootstrap.sh installs it)" >&2
		return 1
	}
}

# start_bg NAME PORTFILE CMD...: runs CMD in the background, waits (10 s
# at most) for PORTFILE, prints the port.  The PID goes to $IO_DIR/pids.
start_bg() {
	local name=$1 pf=$2
	shift 2
	rm -f "$pf"
	"$@" >"$IO_DIR/$name.log" 2>&1 3>&- &
	echo $! >>"$IO_DIR/pids"
	local i
	for i in $(seq 100); do
		[ -s "$pf" ] && { cat "$pf"; return 0; }
		sleep 0.1
	done
	echo "server $name did not start:" >&2
	cat "$IO_DIR/$name.log" >&2
	return 1
}

# io_server NAME ARGS...: tests/io-helpers/ioserver.py; prints the port.
io_server() {
	local name=$1
	shift
	start_bg "$name" "$IO_DIR/$name.port" \
		"$PYTHON" "$IO_HELPERS/ioserver.py" --port-file "$IO_DIR/$name.port" "$@"
}

# A port nothing listens on (bound, then released).
free_port() {
	"$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

io_kill_servers() {
	local p
	[ -f "$IO_DIR/pids" ] || return 0
	while read -r p; do
		kill "$p" 2>/dev/null || true
	done <"$IO_DIR/pids"
	rm -f "$IO_DIR/pids"
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
