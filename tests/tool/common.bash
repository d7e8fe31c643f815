# Helpers for the launcher and real-program tests (tests/3*-tool*.bats,
# tests/4*-programs*.bats). Every client runs under `timeout`; servers
# listen on 127.0.0.1 only and are killed by the PID we started.

: "${TLSSHIM_BUILD:?TLSSHIM_BUILD must name the build directory}"
TLSSHIM="$TLSSHIM_BUILD/src/tlsshim"
SRCROOT=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
POLICIES="$SRCROOT/policies"

# A missing tool fails the test loudly: never a silent skip.
require_tool() {
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 ||
			{ echo "required tool '$t' is missing (tests/bootstrap.sh installs it)" >&2; return 1; }
	done
}

# The shared throwaway PKI (tests/helpers/gencerts.sh) in $1; srv.* is its
# good.* (localhost, 127.0.0.1, ::1), wrong.* its wrongname.* (other.invalid).
gen_certs() {
	sh "$SRCROOT/tests/helpers/gencerts.sh" "$1" >/dev/null || return 1
	ln -sf good.pem "$1/srv.pem" && ln -sf good.key "$1/srv.key" &&
	ln -sf wrongname.pem "$1/wrong.pem" && ln -sf wrongname.key "$1/wrong.key"
	# Servers that drop privileges (memcached -u) must read the key.
	chmod 644 "$1"/*.key
}

# A free TCP port on 127.0.0.1, for servers that cannot report the port
# they bound (redis, mosquitto, memcached take a port number).
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits (bounded) until something listens on 127.0.0.1:$1.
wait_port() {
	local i
	for i in $(seq 1 100); do
		timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' sh "$1" 2>/dev/null &&
			return 0
		sleep 0.1
	done
	echo "nothing listens on 127.0.0.1:$1" >&2
	return 1
}

# Starts a command in the background, remembering its PID for teardown.
start_bg() {
	"$@" &
	echo $! >>"$BATS_FILE_TMPDIR/pids"
}

stop_all() {
	[ -f "$BATS_FILE_TMPDIR/pids" ] || return 0
	local p
	while read -r p; do
		kill "$p" 2>/dev/null || true
	done <"$BATS_FILE_TMPDIR/pids"
	while read -r p; do
		timeout 5 tail --pid="$p" -f /dev/null 2>/dev/null || kill -9 "$p" 2>/dev/null || true
	done <"$BATS_FILE_TMPDIR/pids"
	rm -f "$BATS_FILE_TMPDIR/pids"
}

# A copy of a shipped policy for the test: only ca-file and port numbers
# are rewritten (sed expressions in "$@"), every other line is the shipped
# file's.
derive_policy() {
	local src=$1 dst=$2
	shift 2
	sed "$@" "$src" >"$dst"
	"$TLSSHIM" --check "$dst" >/dev/null
}

# A python3 TLS server on a free port (reported through $2): mode http
# answers every request with "hello over tls"; mode echo echoes.
start_tls_server() {
	local dir=$1 portfile=$2 cert=${3:-srv}
	start_bg python3 "$BATS_TEST_DIRNAME/tool/tlsserver.py" \
		--cert "$dir/$cert.pem" --key "$dir/$cert.key" --port-file "$portfile"
	wait_port_file "$portfile" "TLS server"
}

# Waits (bounded) until a server wrote its port to $1; $2 names it.
wait_port_file() {
	local i
	for i in $(seq 1 100); do
		[ -s "$1" ] && return 0
		sleep 0.1
	done
	echo "$2 did not start" >&2
	return 1
}

# A plain TCP listener on a free port that appends the first bytes of every
# connection to $BATS_FILE_TMPDIR/$1.rec (tests/helpers/tlsserver.py
# --mode raw-record); its port in $BATS_FILE_TMPDIR/$1.port.
start_recorder() {
	local pf=$BATS_FILE_TMPDIR/$1.port
	start_bg python3 "$SRCROOT/tests/helpers/tlsserver.py" --mode raw-record \
		--record "$BATS_FILE_TMPDIR/$1.rec" --port-file "$pf" --max-seconds 300
	wait_port_file "$pf" "recorder $1"
}

# expect_recorded NAME MARK N: the recorder NAME received MARK exactly N
# times. A sentinel connection made now is waited for first, so the
# connections made before it have been handled; then at most 5 s for the
# count to reach N.
expect_recorded() {
	local rec=$BATS_FILE_TMPDIR/$1.rec n i
	local s="sentinel-$BATS_TEST_NUMBER-$RANDOM$RANDOM"
	python3 -c 'import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5)
c.sendall(sys.argv[2].encode())
c.close()' "$(cat "$BATS_FILE_TMPDIR/$1.port")" "$s" || return 1
	for i in $(seq 1 50); do
		grep -qa "$s" "$rec" 2>/dev/null && break
		sleep 0.1
	done
	grep -qa "$s" "$rec" || { echo "recorder $1 recorded no sentinel" >&2; return 1; }
	for i in $(seq 1 50); do
		n=$(grep -ca -- "$2" "$rec" || true)
		[ "$n" -eq "$3" ] && return 0
		[ "$n" -gt "$3" ] && break
		sleep 0.1
	done
	echo "recorder $1 received '$2' $n times, expected $3" >&2
	return 1
}
