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

# A throwaway CA and a server certificate for tlsshim.test and 127.0.0.1,
# plus one for wrong.test (a name mismatch), in $1.
gen_certs() {
	local d=$1
	mkdir -p "$d"
	cat >"$d/ca.tmpl" <<'T'
cn = "tlsshim test CA"
ca
cert_signing_key
expiration_days = 2
T
	cat >"$d/srv.tmpl" <<'T'
cn = "tlsshim.test"
dns_name = "tlsshim.test"
ip_address = "127.0.0.1"
ip_address = "::1"
tls_www_server
signing_key
encryption_key
expiration_days = 2
T
	cat >"$d/wrong.tmpl" <<'T'
cn = "wrong.test"
dns_name = "wrong.test"
tls_www_server
signing_key
encryption_key
expiration_days = 2
T
	certtool --generate-privkey --key-type ecdsa --outfile "$d/ca.key" 2>/dev/null &&
	certtool --generate-self-signed --load-privkey "$d/ca.key" \
		--template "$d/ca.tmpl" --outfile "$d/ca.pem" 2>/dev/null &&
	for n in srv wrong; do
		certtool --generate-privkey --key-type ecdsa --outfile "$d/$n.key" 2>/dev/null &&
		certtool --generate-certificate --load-privkey "$d/$n.key" \
			--load-ca-certificate "$d/ca.pem" --load-ca-privkey "$d/ca.key" \
			--template "$d/$n.tmpl" --outfile "$d/$n.pem" 2>/dev/null ||
			return 1
	done
	chmod 644 "$d"/*.key
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
	local i
	for i in $(seq 1 100); do
		[ -s "$portfile" ] && return 0
		sleep 0.1
	done
	echo "TLS server did not start" >&2
	return 1
}
