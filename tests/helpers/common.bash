# The one helper library of the bats suites: every tests/*.bats loads it
# (some through the helpers of their family: verify.bash, io.bash, ...).
# Paths, tools, servers on free loopback ports killed by the PID we
# started, clients under a timeout.
BUILD=${TLSSHIM_BUILD_DIR:-$BATS_TEST_DIRNAME/../build}
TLSSHIM=$BUILD/src/tlsshim
LIB=$BUILD/src/libtlsshim.so
HELPERS=$BATS_TEST_DIRNAME/helpers
SRCROOT=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
POLICIES=$SRCROOT/policies

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
			fail "required tool '$t' is not installed (tests/bootstrap.sh installs it)"
	done
}

# Certificates once per file, in the file's temporary directory.
certs() {
	require_tool certtool python3 timeout
	CERTS=$BATS_FILE_TMPDIR/certs
	sh "$HELPERS/gencerts.sh" "$CERTS" ||
		fail "gencerts.sh failed in $CERTS"
}

# The same throwaway PKI in $1; srv.* is its good.* (localhost, 127.0.0.1,
# ::1), wrong.* its wrongname.* (other.invalid).
gen_certs() {
	sh "$HELPERS/gencerts.sh" "$1" >/dev/null || return 1
	ln -sf good.pem "$1/srv.pem" && ln -sf good.key "$1/srv.key" &&
	ln -sf wrongname.pem "$1/wrong.pem" && ln -sf wrongname.key "$1/wrong.key"
	# Servers that drop privileges (memcached -u) must read the key.
	chmod 644 "$1"/*.key
}

# A free TCP port on 127.0.0.1, for servers that cannot report the port
# they bound (redis, mosquitto, memcached take a port number), or for a
# port nothing listens on.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_bg CMD...: a process in the background, killed by stop_servers.
start_bg() {
	"$@" &
	echo $! >>"$BATS_FILE_TMPDIR/pids"
}

# wait_port_file FILE NAME: until a server published its port in FILE
# (10 s at most).
wait_port_file() {
	local i
	for i in $(seq 100); do
		[ -s "$1" ] && return 0
		sleep 0.1
	done
	echo "$2 did not start" >&2
	return 1
}

# wait_port PORT: until something listens on 127.0.0.1:PORT (10 s at most).
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

# serve_bg NAME PORTFILE CMD...: the one way to start a server that
# reports its port: CMD in the background (killed by stop_servers), its
# output in NAME.log beside PORTFILE; waits at most 10 s for PORTFILE and
# fails loudly, with the log, when it does not come.
serve_bg() {
	local name=$1 pf=$2
	shift 2
	local log=${pf%.port}.log
	rm -f "$pf"
	start_bg "$@" >>"$log" 2>&1 3>&-
	wait_port_file "$pf" "server $name" || {
		cat "$log" >&2
		fail "server $name did not start"
	}
}

# background_server NAME CMD...: serve_bg with the port file
# $BATS_FILE_TMPDIR/NAME.port (CMD writes it); exports NAME_PORT.
background_server() {
	local name=$1
	shift
	local pf=$BATS_FILE_TMPDIR/$name.port
	serve_bg "$name" "$pf" "$@" || return 1
	eval "${name}_PORT=\$(cat \"\$pf\")"
	export "${name}_PORT"
}

# start_server NAME MODE [tlsserver.py args...]: the test TLS server
# (tests/helpers/tlsserver.py) in MODE; exports NAME_PORT.
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

# start_tls_server DIR PORTFILE [CERTNAME]: the test TLS server answering
# every HTTP request with "hello over tls" (mode hello), with
# DIR/CERTNAME.pem (srv by default); its port in PORTFILE.
start_tls_server() {
	local dir=$1 pf=$2 cert=${3:-srv}
	serve_bg "tls-$cert" "$pf" python3 "$HELPERS/tlsserver.py" --mode hello \
		--cert "$dir/$cert.pem" --key "$dir/$cert.key" --port-file "$pf" \
		--max-seconds 600
}

# Kills what start_bg started, by PID, and waits (5 s at most each).
stop_servers() {
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

# write_policy FILE: the policy text comes on stdin.
write_policy() {
	cat >"$1"
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

# A plain TCP listener on a free port that appends the first bytes of every
# connection to $BATS_FILE_TMPDIR/$1.rec (tests/helpers/tlsserver.py
# --mode raw-record); its port in $BATS_FILE_TMPDIR/$1.port.
start_recorder() {
	local pf=$BATS_FILE_TMPDIR/$1.port
	serve_bg "recorder-$1" "$pf" python3 "$HELPERS/tlsserver.py" \
		--mode raw-record --record "$BATS_FILE_TMPDIR/$1.rec" \
		--port-file "$pf" --max-seconds 300
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
