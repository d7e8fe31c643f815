#!/usr/bin/env bats
# `meson install` into a DESTDIR: the layout, and the installed launcher
# finding the installed preload and engine.

load helpers/common

setup_file() {
	require_tool meson certtool python3 curl
	export DEST="$BATS_FILE_TMPDIR/dest"
	meson install -C "$BUILD" --no-rebuild --destdir "$DEST" >"$BATS_FILE_TMPDIR/install.log" 2>&1 ||
		{ cat "$BATS_FILE_TMPDIR/install.log" >&2; return 1; }
	# The configured directories, from meson itself.
	eval "$(cd "$BUILD" && meson introspect --buildoptions |
		python3 -c '
import json, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
p = o["prefix"]
for k in ("bindir", "libdir", "sysconfdir", "mandir"):
    v = o[k] if o[k].startswith("/") else p + "/" + o[k]
    print("export %s=%s" % (k.upper(), v))
')"
}

teardown_file() {
	stop_servers
}

@test "install layout: launcher in bindir, libraries in libdir, man pages, policies" {
	[ -x "$DEST$BINDIR/tlsshim" ]
	[ -f "$DEST$LIBDIR/libtlsshim.so" ]
	[ -f "$DEST$LIBDIR/libtlsshim-engine.so" ]
	grep -q '^\.TH "tlsshim" "1"' "$DEST$MANDIR/man1/tlsshim.1"
	grep -q '^\.TH "tlsshim.conf" "5"' "$DEST$MANDIR/man5/tlsshim.conf.5"
	for p in default redis-cli curl wget mosquitto_pub mosquitto_sub memcached ldapsearch; do
		[ -f "$DEST$SYSCONFDIR/tlsshim/policies/$p.conf" ]
	done
}

@test "the installed launcher checks the installed policies" {
	local etc=$DEST$SYSCONFDIR/tlsshim
	# The server policy names its files beside the policy directory:
	# without them it is an error, as it should be.
	run timeout 10 "$DEST$BINDIR/tlsshim" --check "$etc/policies/redis-server.conf"
	[ "$status" -eq 1 ]
	[[ "$output" == *"cannot read $etc/policies/../certs/redis-server.pem"* ]]
	# Put where an administrator puts them, every installed policy passes.
	gen_certs "$BATS_FILE_TMPDIR/certs"
	mkdir -p "$etc/certs"
	cp "$BATS_FILE_TMPDIR/certs/good.pem" "$etc/certs/redis-server.pem"
	cp "$BATS_FILE_TMPDIR/certs/good.key" "$etc/certs/redis-server.key"
	chmod 600 "$etc/certs/redis-server.key"
	cp "$BATS_FILE_TMPDIR/certs/ca.pem" "$etc/certs/redis-clients-ca.pem"
	run timeout 10 "$DEST$BINDIR/tlsshim" --check "$etc"/policies/*.conf
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

@test "the installed launcher runs a program with the installed preload and engine" {
	gen_certs "$BATS_FILE_TMPDIR/certs"
	start_tls_server "$BATS_FILE_TMPDIR/certs" "$BATS_FILE_TMPDIR/port" srv
	local port=$(cat "$BATS_FILE_TMPDIR/port") p=$BATS_TEST_TMPDIR/p.conf
	printf '[web]\nmatch = 127.0.0.1:1080\nca-file = %s\ntls-port = %s\n' \
		"$BATS_FILE_TMPDIR/certs/ca.pem" "$port" >"$p"
	# Nothing of the build tree may be used.
	run env -u LD_LIBRARY_PATH timeout 20 "$DEST$BINDIR/tlsshim" -p "$p" -l debug -- curl -sS http://127.0.0.1:1080/
	[ "$status" -eq 0 ]
	[[ "$output" == *"hello over tls"* ]]
	[[ "$output" == *"loaded TLS engine $DEST$LIBDIR/libtlsshim-engine.so"* ]]
	run env -u LD_LIBRARY_PATH timeout 20 "$DEST$BINDIR/tlsshim" on
	[[ "$output" == *"LD_PRELOAD='$DEST$LIBDIR/libtlsshim.so"* ]]
	run env -u LD_LIBRARY_PATH timeout 20 "$DEST$BINDIR/tlsshim" --probe "$p" 127.0.0.1:1080
	[ "$status" -eq 0 ]
	[[ "$output" == *"verdict: OK"* ]]
}
