# Shared by the server-mode bats files (tests/9x-server-*.bats, issue 16):
# unmodified servers started under the launcher with an accept rule, the
# clients that talk to them, and how each verdict is read: the server's
# record of what it saw (tests/server/srv.h), what a client received,
# and the server's log lines.
load helpers/common

SRV=$BATS_TEST_DIRNAME/server
SRVBIN=$BUILD/tests/server

srv_certs() {
	require_tool certtool python3 timeout
	CERTS=$BATS_FILE_TMPDIR/certs
	export CERTS
	sh "$SRV/gencerts.sh" "$CERTS" >/dev/null ||
		fail "tests/server/gencerts.sh failed in $CERTS"
}

# accept_rule NAME ACCEPT [LINE...]: a rule serving good.pem on ACCEPT,
# its section on the first line printed, then the LINEs
# ("client-ca = ...").
accept_rule() {
	printf '[%s]\naccept = %s\ncert = %s\nkey = %s\n' "$1" "$2" \
		"$CERTS/good.pem" "$CERTS/good.key"
	shift 2
	[ $# -eq 0 ] || printf '%s\n' "$@"
}

# client_rule FILE RULE PORT: a client policy for a plain client under
# tlsshim: RULE upgrades 127.0.0.1:PORT, verified against the test CA,
# presenting app1's certificate.
client_rule() {
	printf '[%s]\nmatch = 127.0.0.1:%s\nca-file = %s\nclient-cert = %s\nclient-key = %s\n' \
		"$2" "$3" "$CERTS/ca.pem" "$CERTS/app1.pem" "$CERTS/app1.key" >"$1"
}

srv_free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# listening PORT: something listens on it (read from /proc: a probing
# connection would itself be a client the server's rule has to judge).
listening() {
	local f tables=
	for f in /proc/net/tcp /proc/net/tcp6; do
		[ -r "$f" ] && tables="$tables $f"
	done
	# shellcheck disable=SC2086
	awk -v p=":$(printf '%04X' "$1")" \
		'$4 == "0A" && substr($2, length($2) - 4) == p { f = 1 }
		END { exit !f }' $tables
}

# srv_run NAME POLICY CMD...: CMD under the launcher with POLICY, log
# level info (the sanitizer runtimes first, as the launcher keeps them);
# its output goes to NAME.log, its PID to NAME.pid and the pids list.
srv_run() {
	local name=$1 pol=$2
	shift 2
	env ${TLSSHIM_SAN_PRELOAD:+LD_PRELOAD="$TLSSHIM_SAN_PRELOAD"} \
		"$TLSSHIM" -l info -p "$pol" -- "$@" 3>&- \
		>>"$BATS_FILE_TMPDIR/$name.log" 2>&1 &
	echo $! >>"$BATS_FILE_TMPDIR/pids"
	echo $! >"$BATS_FILE_TMPDIR/$name.pid"
}

srv_alive() {
	kill -0 "$(cat "$BATS_FILE_TMPDIR/$1.pid" 2>/dev/null)" 2>/dev/null
}

# srv_wait NAME CHECK...: until CHECK succeeds while NAME runs (10 s).
srv_wait() {
	local name=$1 i
	shift
	for i in $(seq 100); do
		"$@" && return 0
		srv_alive "$name" || break
		sleep 0.1
	done
	"$@"
}

# srv_c NAME thread|epoll POLICY ARGS...: a C test server under the
# launcher, recording into NAME.rec; exports NAME_PORT (its first
# listener). ARGS: -P PORT... -g GREETING -b ADDR (srv.h).
srv_c() {
	local name=$1 kind=$2 pol=$3 pf
	shift 3
	pf=$BATS_FILE_TMPDIR/$name.port
	rm -f "$pf"
	srv_run "$name" "$pol" "$SRVBIN/echo_$kind" \
		-r "$BATS_FILE_TMPDIR/$name.rec" -p "$pf" "$@"
	srv_wait "$name" test -s "$pf" || return 1
	eval "${name}_PORT=\$(cat \"\$pf\")"
	export "${name}_PORT"
}

# srv_need NAME: the server NAME is up, else the test fails with its log.
# Servers start in setup_file without failing it, so that each test
# reports why it cannot run.
srv_need() {
	srv_alive "$1" ||
		fail "server $1 is not running; its log: $(tail -n 5 "$BATS_FILE_TMPDIR/$1.log" 2>/dev/null)"
}

# rec_wait NAME TEXT: the last line of NAME.rec containing TEXT, waiting
# for it at most 10 s.
rec_wait() {
	rec_wait_file "$BATS_FILE_TMPDIR/$1.rec" "$2"
}

# rec_wait_file FILE TEXT: as rec_wait, for a record file of any name.
rec_wait_file() {
	local f=$1 i
	for i in $(seq 100); do
		if grep -qF -- "$2" "$f" 2>/dev/null; then
			grep -F -- "$2" "$f" | tail -n 1
			return 0
		fi
		sleep 0.1
	done
	echo "no '$2' in $f: $(tail -n 5 "$f" 2>/dev/null)" >&2
	return 1
}

rec_count() { # NAME TEXT: the lines of NAME.rec holding TEXT (0 before it exists)
	local n
	n=$(grep -cF -- "$2" "$BATS_FILE_TMPDIR/$1.rec" 2>/dev/null)
	echo "${n:-0}"
}

# rec_next NAME TEXT N: once NAME.rec has more than N lines holding TEXT
# (at most 10 s), the last of them: the connection a client made when
# the client itself cannot say which it was (a refused connect).
rec_next() {
	local i
	for i in $(seq 100); do
		[ "$(rec_count "$1" "$2")" -gt "$3" ] && break
		sleep 0.1
	done
	[ "$(rec_count "$1" "$2")" -gt "$3" ] || return 1
	grep -F -- "$2" "$BATS_FILE_TMPDIR/$1.rec" | tail -n 1
}

# field LINE KEY: the value of KEY=... in a key=value line.
field() {
	printf ' %s\n' "$1" | sed -n "s/.* $2=\([^ ]*\).*/\1/p" | tail -n 1
}

# The value of KEY in $output (its last line that has KEY=).
out() {
	field "$(printf '%s\n' "$output" | sed 's/^/ /' | grep -F -- " $1=" | tail -n 1)" "$1"
}

re_quote() {
	printf '%s' "$1" | sed 's/[][\.*^$+?(){}|/]/\\&/g'
}

# log_lines NAME TEXT: the lines of NAME.log containing TEXT.
log_lines() {
	grep -F -- "$2" "$BATS_FILE_TMPDIR/$1.log" 2>/dev/null || true
}

# log_wait NAME TEXT: at most 10 s for a line of NAME.log with TEXT.
log_wait() {
	local i
	for i in $(seq 100); do
		[ -n "$(log_lines "$1" "$2")" ] && return 0
		sleep 0.1
	done
	return 1
}

# expect_verified NAME RULE PEER LOCAL HOW: NAME.log holds exactly one
# line of rule RULE for PEER -> LOCAL, the info line of a verified client:
#   tlsshim: info: PROGRAM: rule RULE PEER -> LOCAL: TLS1.3 CIPHER, HOW
# (HOW: "client verified (IDENTITY)" or "no client certificate asked"),
# and no error line for it.
expect_verified() {
	local name=$1 rule=$2 peer=$3 local=$4 how=$5 l re
	log_wait "$name" "rule $rule $peer -> $local: TLS" ||
		fail "$name.log has no line 'rule $rule $peer -> $local: TLS...': $(tail -n 5 "$BATS_FILE_TMPDIR/$name.log")"
	l=$(log_lines "$name" "rule $rule $peer -> $local: TLS")
	[ "$(printf '%s\n' "$l" | wc -l)" -eq 1 ] ||
		fail "more than one verified line for $peer -> $local: $l"
	re="^tlsshim: info: [^:]+: rule $(re_quote "$rule") $(re_quote "$peer") -> $(re_quote "$local"): TLS1\.3 [A-Z0-9-]+, $(re_quote "$how")\$"
	[[ $l =~ $re ]] || fail "not the verified-client line ('..., $how'): $l"
	[ -z "$(log_lines "$name" " $peer -> $local: " | grep '^tlsshim: error: ')" ] ||
		fail "an error line for a verified client: $(log_lines "$name" " $peer -> $local: ")"
}

# expect_refused NAME RULE PEER LOCAL: NAME.log holds exactly one error
# line for PEER -> LOCAL,
#   tlsshim: error: RULE PEER -> LOCAL: REASON
# with a reason, and no verified line for it.
expect_refused() {
	local name=$1 rule=$2 peer=$3 local=$4 l re
	log_wait "$name" "tlsshim: error: $rule $peer -> $local: " ||
		fail "$name.log has no 'tlsshim: error: $rule $peer -> $local: REASON': $(tail -n 5 "$BATS_FILE_TMPDIR/$name.log")"
	l=$(log_lines "$name" " $peer -> $local: " | grep '^tlsshim: error: ')
	[ "$(printf '%s\n' "$l" | wc -l)" -eq 1 ] ||
		fail "not one error line for $peer -> $local: $l"
	re="^tlsshim: error: $(re_quote "$rule") $(re_quote "$peer") -> $(re_quote "$local"): [^ ].*\$"
	[[ $l =~ $re ]] || fail "not the refusal line: $l"
	[ -z "$(log_lines "$name" "rule $rule $peer -> $local: TLS")" ] ||
		fail "a refused client was also logged as verified: $(log_lines "$name" "rule $rule $peer -> $local: TLS")"
}

# expect_dropped NAME PEER [greeting]: the program saw the connection of
# PEER end as a dropped client's does: its read returned 0 (EOF) and not
# one byte of the client reached it; with a greeting server, its write
# failed with EPIPE.
expect_dropped() {
	local l
	l=$(rec_wait "$1" "close peer=$2 ") || fail "$1 recorded no end for $2"
	expect_dropped_line "$l" "${3:-}"
}

# expect_dropped_line LINE [greeting]: expect_dropped on a close line
# already found (a connection the program got as one that is over has
# no peer address to find it by).
expect_dropped_line() {
	local l=$1 want=-
	[ -z "${2:-}" ] || want=EPIPE
	[ "$(field "$l" in)" = 0 ] || fail "the program read bytes of a dropped client: $l"
	[ "$(field "$l" end)" = eof ] || fail "the program's read did not return 0 (EOF): $l"
	[ "$(field "$l" greet)" = "$want" ] ||
		fail "the greeting to a dropped client: expected greet=$want: $l"
}

# tls_client MODE PORT ARGS...: tests/server/tlsclient.py, verifying the
# server with ca.pem.
tls_client() {
	run timeout 60 python3 "$SRV/tlsclient.py" "$1" "$2" --ca "$CERTS/ca.pem" "${@:3}"
}

# raw_client PORT ARGS...: tests/server/rawclient.py (plaintext).
raw_client() {
	run timeout 70 python3 "$SRV/rawclient.py" "$@"
}

# no_plaintext_reply FILE MARK: what a client received (FILE) holds no
# byte of the program's: not MARK, and nothing but TLS records (a
# refusing TLS stack may send an alert).
no_plaintext_reply() {
	local f=$1 mark=$2
	! grep -qaF -- "$mark" "$f" || fail "the program's reply reached a refused client in clear: $(head -c 200 "$f" | od -c | head -n 5)"
	[ ! -s "$f" ] || [ "$(od -An -tx1 -N1 "$f" | tr -d ' ')" = 15 ] ||
		[ "$(od -An -tx1 -N1 "$f" | tr -d ' ')" = 16 ] ||
		fail "a refused client received bytes that are not TLS: $(head -c 64 "$f" | od -c | head -n 3)"
}

# s_client OUT UNTIL LINE ARGS...: openssl s_client (ARGS: -connect and
# the rest), verifying the server with ca.pem, sending LINE, staying after
# its input ends (-ign_eof); its output in OUT. Stopped once OUT matches
# UNTIL (grep -E) or it ended by itself, at most 10 s.
s_client() {
	local o=$1 until=$2 line=$3 pid i
	shift 3
	printf '%s\n' "$line" | timeout 20 openssl s_client -ign_eof \
		-CAfile "$CERTS/ca.pem" -verify_return_error "$@" >"$o" 2>&1 &
	pid=$!
	for i in $(seq 100); do
		grep -qE -- "$until" "$o" && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill "$pid" 2>/dev/null || true
	wait "$pid" || true
}

# fingerprint PORT [s_client args]: SHA-256 fingerprint of the
# certificate a server on 127.0.0.1:PORT serves (openssl s_client).
fingerprint() {
	local port=$1
	shift
	timeout 10 openssl s_client -connect "127.0.0.1:$port" \
		-CAfile "$CERTS/ca.pem" "$@" </dev/null 2>/dev/null |
		openssl x509 -noout -fingerprint -sha256 2>/dev/null |
		sed 's/.*=//'
}

file_fingerprint() {
	openssl x509 -in "$1" -noout -fingerprint -sha256 | sed 's/.*=//'
}
