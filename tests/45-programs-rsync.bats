#!/usr/bin/env bats
# rsync:// through tlsshim to an rsync daemon behind a TLS terminator
# (socat OPENSSL-LISTEN in front of rsync --daemon, on loopback). rsync's
# client forks: its receiver reads the socket in one process while its
# generator writes it in another, which works because each direction of
# the TLS session has its own owner after fork (docs/design.md). List,
# push and pull of a tree with a 50 MB file, compared by SHA-256.

load helpers/common

setup_file() {
	require_tool certtool python3 rsync socat sha256sum
	export CERTS="$BATS_FILE_TMPDIR/certs"
	gen_certs "$CERTS"
	export SRC="$BATS_FILE_TMPDIR/module"
	mkdir -p "$SRC/tree/sub"
	head -c 52428800 /dev/urandom >"$SRC/tree/big.bin"
	echo "a small file" >"$SRC/tree/sub/small.txt"
	cat >"$BATS_FILE_TMPDIR/rsyncd.conf" <<C
use chroot = no
[mod]
path = $SRC
read only = no
uid = $(id -u)
gid = $(id -g)
C
	export DAEMON=$(free_port) TLS=$(free_port) PLAIN=$(free_port)
	start_bg rsync --daemon --no-detach --address=127.0.0.1 \
		--port="$DAEMON" --config="$BATS_FILE_TMPDIR/rsyncd.conf" \
		--log-file="$BATS_FILE_TMPDIR/rsyncd.log"
	wait_port "$DAEMON"
	start_bg socat -lf "$BATS_FILE_TMPDIR/socat.log" \
		"OPENSSL-LISTEN:$TLS,bind=127.0.0.1,reuseaddr,fork,cert=$CERTS/srv.pem,key=$CERTS/srv.key,verify=0" \
		"TCP:127.0.0.1:$DAEMON"
	wait_port "$TLS"
	export POL="$BATS_FILE_TMPDIR/rsync.conf"
	printf '[rsync]\nmatch = 127.0.0.1:%s\ntls-port = %s\nca-file = %s\n' \
		"$PLAIN" "$TLS" "$CERTS/ca.pem" >"$POL"
}

teardown_file() {
	stop_servers
}

sums() { # DIR: the tree's files and their SHA-256, sorted
	(cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
}

@test "rsync: without tlsshim the TLS terminator refuses rsync's plaintext" {
	run timeout 20 rsync "rsync://127.0.0.1:$TLS/"
	[ "$status" -ne 0 ]
}

@test "rsync: the daemon's modules listed over verified TLS" {
	run timeout 60 "$TLSSHIM" -p "$POL" -l info -- rsync "rsync://127.0.0.1:$PLAIN/"
	[ "$status" -eq 0 ]
	[[ "$output" == *"mod"* ]]
	[[ "$output" == *"rule rsync 127.0.0.1:$PLAIN (127.0.0.1): TLS1."*"verified (TLS port $TLS)"* ]]
}

@test "rsync: pull of a tree with a 50 MB file (receiver and generator in two processes)" {
	local dst=$BATS_TEST_TMPDIR/pulled
	run timeout 120 "$TLSSHIM" -p "$POL" -- rsync -a \
		"rsync://127.0.0.1:$PLAIN/mod/tree/" "$dst/"
	[ "$status" -eq 0 ]
	[[ "$output" != *"tlsshim: warn"* ]]
	[ "$(sums "$SRC/tree")" = "$(sums "$dst")" ]
}

@test "rsync: push of a tree with a 50 MB file" {
	local src=$BATS_TEST_TMPDIR/up
	mkdir -p "$src/deep"
	head -c 52428800 /dev/urandom >"$src/deep/upload.bin"
	echo pushed >"$src/note.txt"
	run timeout 120 "$TLSSHIM" -p "$POL" -- rsync -a "$src/" \
		"rsync://127.0.0.1:$PLAIN/mod/pushed/"
	[ "$status" -eq 0 ]
	[[ "$output" != *"tlsshim: warn"* ]]
	[ "$(sums "$src")" = "$(sums "$SRC/pushed")" ]
}

@test "rsync: an incremental pull after a change sends only the change, verified by the same sums" {
	local dst=$BATS_TEST_TMPDIR/again
	run timeout 120 "$TLSSHIM" -p "$POL" -- rsync -a \
		"rsync://127.0.0.1:$PLAIN/mod/tree/" "$dst/"
	[ "$status" -eq 0 ]
	printf 'changed' | dd of="$SRC/tree/big.bin" bs=1 seek=1000000 conv=notrunc 2>/dev/null
	run timeout 120 "$TLSSHIM" -p "$POL" -- rsync -a --stats \
		"rsync://127.0.0.1:$PLAIN/mod/tree/" "$dst/"
	[ "$status" -eq 0 ]
	[[ "$output" =~ Number\ of\ regular\ files\ transferred:\ 1 ]]
	[ "$(sums "$SRC/tree")" = "$(sums "$dst")" ]
}
