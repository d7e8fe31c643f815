#!/usr/bin/env bats
# Fail closed on every path (issue 12). Each test runs one way a program
# can put bytes on a socket (tests/leak/leak.c, or a real program) on a
# connection the policy upgrades, through a tap that records what reached
# the wire (tests/helpers/wiretap.py) in front of a TLS echo server. The
# verdict is the record: the marker the program wrote must never be in it.

load helpers/common

MARK=TLSSHIM-LEAK-MARKER

setup_file() {
	require_tool python3 unshare openssl
	[ -x "${LEAK:-}" ] || LEAK=$BUILD/tests/leak/leak
	export LEAK
	certs
	export CERTS
	tls_server ECHO echo good
	tls_server ECHO6 echo good --host ::1
	tls_server HTTP http good
	REC=$BATS_FILE_TMPDIR/rec
	export REC
	tap TAP "$ECHO_PORT"
	tap TAP6 "$ECHO6_PORT" ::1
	tap TAPH "$HTTP_PORT"
	tap MUTE ""
}

teardown_file() {
	stop_servers
}

# tap NAME UPSTREAM_PORT [HOST]: a recording proxy; exports NAME_PORT.
tap() {
	local name=$1 up=$2 host=${3:-127.0.0.1} pf
	pf=$BATS_FILE_TMPDIR/$1.port
	python3 "$HELPERS/wiretap.py" --host "$host" --port-file "$pf" \
		--record-dir "$REC" ${up:+--upstream-port "$up"} \
		${up:+--upstream-host "$host"} --idle 5 --max-seconds 600 \
		3>&- 2>>"$BATS_FILE_TMPDIR/$name.log" &
	echo $! >>"$BATS_FILE_TMPDIR/pids"
	wait_port_file "$pf" || fail "tap $name did not start"
	eval "${name}_PORT=\$(cat \"\$pf\")"
	export "${name}_PORT"
}

setup() {
	rm -rf "$REC"
	mkdir -p "$REC"
	P=$BATS_TEST_TMPDIR/p.conf
	cat >"$P" <<-EOF
	handshake-timeout = 5
	[tap]
	match = 127.0.0.1:$TAP_PORT, [::1]:$TAP6_PORT, 127.0.0.1:$MUTE_PORT
	ca-file = $CERTS/ca.pem
	EOF
}

# The record of every connection: never the marker in clear.
on_wire_nothing() {
	local hits
	hits=$(cat "$REC"/conn-*.raw 2>/dev/null | grep -c -a "${1:-$MARK}" || true)
	[ "$hits" -eq 0 ] || fail "the wire carried '${1:-$MARK}' in clear $hits times"
}

# Every connection the tap saw began with a TLS ClientHello.
all_tls() {
	local f n=0
	for f in "$REC"/conn-*.raw; do
		[ -s "$f" ] || continue
		n=$((n + 1))
		[ "$(od -An -tx1 -N2 "$f" | tr -d ' ')" = 1603 ] ||
			fail "$(basename "$f") does not start with a TLS record: $(od -An -c -N16 "$f")"
	done
	[ "$n" -gt 0 ] || fail "the tap saw no connection"
}

# Every program through the launcher, the sanitizer runtimes first.
tshim() {
	run timeout 60 env ${TLSSHIM_SAN_PRELOAD:+LD_PRELOAD="$TLSSHIM_SAN_PRELOAD"} \
		"$TLSSHIM" "$@"
}

leak() {
	run timeout 120 env ${TLSSHIM_SAN_PRELOAD:+LD_PRELOAD="$TLSSHIM_SAN_PRELOAD"} \
		LEAK_PORT="$TAP_PORT" LEAK_PORT6="$TAP6_PORT" \
		LEAK_NAME=localhost "$TLSSHIM" -p "${POLICY:-$P}" -- "$LEAK" "$@"
}

carried() {
	leak "$1"
	assert_success
	on_wire_nothing
	all_tls
}

@test "the tap records plaintext: a client without tlsshim puts the marker on the wire" {
	run timeout 30 env LEAK_PORT="$TAP_PORT" "$LEAK" write
	assert_failure
	run grep -c -a "$MARK" "$REC"/conn-1.raw
	assert_output 1
}

@test "every path of leak.c has a test here" {
	local t
	for t in $("$LEAK" --list); do
		grep -q "^@test \"$t:" "$BATS_TEST_FILENAME" ||
			fail "leak.c path '$t' has no @test in $(basename "$BATS_TEST_FILENAME")"
	done
}

# Addresses and sockets that must not escape matching.
@test "v6len24: connect() with a 24-byte sockaddr_in6 is matched" { carried v6len24; }
@test "v6len24_mapped: a 24-byte v4-mapped address is matched as IPv4" { carried v6len24_mapped; }
@test "any4: connect() to 0.0.0.0 (Linux: loopback) is matched as 127.0.0.1" { carried any4; }
@test "any4_mapped: connect() to ::ffff:0.0.0.0 is matched as 127.0.0.1" { carried any4_mapped; }
@test "mptcp: an MPTCP socket is upgraded like TCP" { carried mptcp; }
@test "fastopen_connect: TCP_FASTOPEN_CONNECT's first write is the ClientHello" { carried fastopen_connect; }
@test "sendto_fastopen: MSG_FASTOPEN is an implicit connect" { carried sendto_fastopen; }
@test "sendmsg_fastopen: MSG_FASTOPEN is an implicit connect" { carried sendmsg_fastopen; }
@test "sendmmsg_fastopen: MSG_FASTOPEN with msg_name on an unconnected socket" { carried sendmmsg_fastopen; }
@test "sendmsg_fastopen_v6len24: fast open with a 24-byte v4-mapped address" { carried sendmsg_fastopen_v6len24; }

# name_policy [PORT]: a host-name rule for localhost:PORT (the echo tap).
name_policy() {
	POLICY=$BATS_TEST_TMPDIR/name.conf
	printf 'handshake-timeout = 5\n[name]\nmatch = localhost:%s\nca-file = %s\n' \
		"${1:-$TAP_PORT}" "$CERTS/ca.pem" >"$POLICY"
}

@test "name_mapped: a name rule matches a v4-mapped connect (as a dual-stack JVM makes)" {
	name_policy
	carried name_mapped
}

@test "name_v4: a name rule matches the address the program resolved" {
	name_policy
	carried name_v4
}

@test "name_after_many: a rule's name outlives 600 other lookups" {
	name_policy
	local hosts=$BATS_TEST_TMPDIR/hosts i
	{
		echo "127.0.0.1 localhost"
		for i in $(seq 0 599); do
			echo "127.0.$((1 + i / 250)).$((1 + i % 250)) h$i.leak.test"
		done
	} >"$hosts"
	run timeout 120 unshare -rm sh -c "mount --bind '$hosts' /etc/hosts && \
		exec env ${TLSSHIM_SAN_PRELOAD:+LD_PRELOAD='$TLSSHIM_SAN_PRELOAD'} \
		LEAK_PORT=$TAP_PORT LEAK_NAME=localhost LEAK_MANY=600 \
		'$TLSSHIM' -p '$POLICY' -- '$LEAK' name_after_many"
	assert_success
	on_wire_nothing
	all_tls
}

# Races and ordering.
@test "race_connect: another thread's send during a blocking connect waits for TLS" {
	carried race_connect
}

@test "race_close: sends racing close() never leave raw" {
	leak race_close
	assert_success
	on_wire_nothing
	all_tls
}

@test "dup3_einval: a failing dup3 onto the fd changes nothing" { carried dup3_einval; }
@test "close_range_einval: a failing close_range changes nothing" { carried close_range_einval; }
@test "dup2_over: dup2 of an upgraded fd carries its session on the new number" { carried dup2_over; }

# Write paths carried through the session.
@test "write: carried" { carried write; }
@test "__write: glibc's exported internal name, carried" { carried __write; }
@test "send: carried" { carried send; }
@test "__send: carried" { carried __send; }
@test "writev: carried" { carried writev; }
@test "pwritev2: at offset -1 it is writev: carried" { carried pwritev2; }
@test "pwritev64v2: at offset -1: carried" { carried pwritev64v2; }
@test "syscall_write: syscall(SYS_write): carried" { carried syscall_write; }
@test "syscall_pwritev2: syscall(SYS_pwritev2) at -1: carried" { carried syscall_pwritev2; }
@test "dprintf: libc's internal write, carried" { carried dprintf; }
@test "__dprintf_chk: the fortified dprintf, carried" { carried __dprintf_chk; }
@test "vdprintf: carried" { carried vdprintf; }
@test "__connect: glibc's exported connect is matched" { carried __connect; }
@test "eventfd_write: libc's internal write of 8 bytes, carried" { carried eventfd_write; }
@test "sendfile: emulated through the session" { carried sendfile; }
@test "splice: emulated through the session" { carried splice; }

# Write paths refused (by the kernel or by tlsshim), stream intact.
@test "pwrite: the kernel refuses (ESPIPE)" { carried pwrite; }
@test "pwritev: the kernel refuses (ESPIPE)" { carried pwritev; }
@test "pwritev2_offset: at an offset, ESPIPE" { carried pwritev2_offset; }
@test "tcsendbreak: not a terminal" { carried tcsendbreak; }
@test "copy_file_range: the kernel refuses a socket" { carried copy_file_range; }
@test "tee: the kernel refuses a socket" { carried tee; }
@test "vmsplice: the kernel refuses a socket" { carried vmsplice; }
@test "mq_send: the kernel refuses a socket" { carried mq_send; }
@test "aio_write: refused before anything is queued" { carried aio_write; }
@test "aio_read: refused before anything is queued" { carried aio_read; }
@test "rexec: libc's own connect to a matched destination is refused" {
	carried rexec
	assert_output --partial "rexec"
}
@test "rcmd: libc's own connect to a matched destination is refused" {
	carried rcmd
	assert_output --partial "rcmd"
}
@test "lio_listio: refused before anything is queued" { carried lio_listio; }
@test "io_submit: kernel AIO on an upgraded fd refused" { carried io_submit; }
@test "io_uring_setup: refused where the policy upgrades" {
	carried io_uring_setup
	assert_output --partial "io_uring_setup refused"
}

@test "io_uring: io-uring = allow lets io_uring_setup through" {
	{ echo "io-uring = allow"; cat "$P"; } >"$P.allow"
	POLICY=$P.allow leak io_uring_setup
	assert_failure
	assert_output --partial "io_uring_setup was allowed"
}

# stdio.
@test "stdio_before: a stream made before connect is sealed, never raw" {
	carried stdio_before
	assert_output --partial "a stdio stream was open on fd"
}
@test "stdout_dup2: stdout moved onto the socket is sealed" { carried stdout_dup2; }
@test "stdio_after: fdopen after connect goes through the session" { carried stdio_after; }
@test "_IO_fdopen: glibc's old name of fdopen, after connect, goes through the session" { carried _IO_fdopen; }

# exec and spawn: an inherited upgraded fd reaches no program raw.
@test "exec: the new program gets a closed socket, one error line" {
	carried exec
	assert_output --partial "has no FD_CLOEXEC"
}
@test "execle: the list's environment reaches the program; the fd does not" { carried execle; }
@test "exec_failed: a failed exec leaves the fd as it was" { carried exec_failed; }
@test "vfork_exec: the vfork child's exec gets a closed socket" { carried vfork_exec; }
@test "posix_spawn: a dup2 file action copies a closed socket, not the raw one" { carried posix_spawn; }
@test "system: the shell does not get the fd" { carried system; }
@test "popen: the shell does not get the fd" { carried popen; }
@test "scm_rights: an upgraded fd passed to another process arrives closed" {
	carried scm_rights
	assert_output --partial "SCM_RIGHTS"
}

# fork without libc's handlers: no nonce twice.
PARENT_PLAIN=PARENT-RECORD-PLAINTEXT-0001
CHILD_PLAIN=CHILD--RECORD-PLAINTEXT-0002

# forked PATH: the wire first (no record sealed twice under one nonce,
# whatever the program saw), then the program's own verdict.
forked() {
	leak "$1"
	local st=$status out=$output
	run python3 "$HELPERS/tlsrecords.py" reuse "$REC"/conn-*.raw \
		--plain "$PARENT_PLAIN" --plain "$CHILD_PLAIN"
	assert_success
	output=$out status=$st assert_success
	on_wire_nothing
	all_tls
}

@test "the nonce check finds a keystream used twice" {
	run python3 "$HELPERS/tlsrecords.py" selftest
	assert_success
}

@test "fork_syscall: syscall(SYS_fork)'s child cannot write the parent's session" { forked fork_syscall; }
@test "_Fork: the child cannot write the parent's session" { forked _Fork; }
@test "clone: a clone without CLONE_VM cannot write the parent's session" { forked clone; }
@test "vfork_write: vfork's child writes the shared session, the parent follows" { forked vfork_write; }
@test "fork_split: after fork the writes are the first writer's, the reads the first reader's" { forked fork_split; }

# Real programs.
@test "links resolves in a child: verified under a name rule" {
	require_tool links
	name_policy "$TAPH_PORT"
	tshim -p "$POLICY" -- links -dump \
		"http://localhost:$TAPH_PORT/$MARK"
	assert_success
	assert_output --partial "hello from the tls server, path /$MARK"
	on_wire_nothing
	all_tls
}

java_client() {
	require_tool java
	TLSSHIM_LOG=debug tshim -p "$POLICY" -- \
		java "$BATS_TEST_DIRNAME/leak/JavaClient.java" "$1" "$TAP_PORT" "$MARK"
}

@test "Java (v4-mapped AF_INET6 sockets) under an IP rule: verified" {
	POLICY=$P
	java_client 127.0.0.1
	assert_success
	assert_output --partial "echo: $MARK"
	assert_output --partial "verifying 127.0.0.1 (IP literal"
	on_wire_nothing
	all_tls
}

@test "Java under a name rule: matched by the name it resolved, verified" {
	name_policy
	java_client localhost
	assert_success
	assert_output --partial "echo: $MARK"
	assert_output --partial "verifying localhost (name the program resolved)"
	on_wire_nothing
	all_tls
}

@test "default deny: unmatched = refuse refuses a plaintext connect; tls = no lets one through" {
	printf 'unmatched = refuse\n[plain]\nmatch = 127.0.0.1:%s\ntls = no\n' \
		"$MUTE_PORT" >"$P.deny"
	LEAK_PORT="$TAPH_PORT" tshim -p "$P.deny" -- "$LEAK" write
	assert_failure
	assert_output --partial "tlsshim: error: unmatched 127.0.0.1:$TAPH_PORT: refused"
	[ ! -s "$REC/conn-1.raw" ] || fail "a refused connect reached the server"
	LEAK_PORT="$MUTE_PORT" tshim -p "$P.deny" -- "$LEAK" write
	assert_failure # the mute tap never answers
	run grep -c -a "$MARK" "$REC"/conn-*.raw
	assert_output 1 # the exception went out as the policy says: in clear
}
