#!/usr/bin/env bats
# The launcher: help, version, --check, --explain, --probe, on/off, the
# policy it finds and hands down, and the targets it refuses because the
# preload cannot reach them (judged by what a plain listener received).

load helpers/common

setup_file() {
	require_tool certtool python3 curl gcc go readelf
	export CERTS="$BATS_FILE_TMPDIR/certs"
	gen_certs "$CERTS"
	start_tls_server "$CERTS" "$BATS_FILE_TMPDIR/good.port" srv
	start_tls_server "$CERTS" "$BATS_FILE_TMPDIR/wrong.port" wrong
	export GOOD=$(cat "$BATS_FILE_TMPDIR/good.port")
	export WRONG=$(cat "$BATS_FILE_TMPDIR/wrong.port")
	cat >"$BATS_FILE_TMPDIR/p.conf" <<P
[good]
match = 127.0.0.1:1080
ca-file = $CERTS/ca.pem
tls-port = $GOOD

[named]
match = 127.0.0.1:1081
sni = localhost
ca-file = $CERTS/ca.pem
tls-port = $GOOD

[wrong]
match = 127.0.0.1:1082
ca-file = $CERTS/ca.pem
tls-port = $WRONG

[byname]
match = localhost:1083
ca-file = $CERTS/ca.pem
P
	export POL="$BATS_FILE_TMPDIR/p.conf"
	# A plain listener, and a policy that selects it: a client the
	# preload reaches sends a ClientHello there, never its marker.
	start_recorder rec
	export REC=$(cat "$BATS_FILE_TMPDIR/rec.port")
	export RECPOL="$BATS_FILE_TMPDIR/rec.conf"
	printf '[rec]\nmatch = 127.0.0.1:%s\nca-file = %s\n' "$REC" \
		"$CERTS/ca.pem" >"$RECPOL"
	export LIB="$BUILD/src/libtlsshim.so"
	build_go
}

# tests/tool/dial.go without cgo (static) and with it (dynamic, libc
# loaded), offline, with the toolchain's state in the file's directory.
build_go() {
	export GODIR="$BATS_FILE_TMPDIR/go"
	mkdir -p "$GODIR"
	cp "$BATS_TEST_DIRNAME/tool/dial.go" "$GODIR/main.go"
	(
		cd "$GODIR" || exit 1
		export HOME="$GODIR" GOCACHE="$GODIR/cache" GOPATH="$GODIR/path" \
			GOFLAGS= GOPROXY=off GOTOOLCHAIN=local
		CGO_ENABLED=0 go build -o dial-static main.go &&
			CGO_ENABLED=1 go build -o dial-cgo main.go
	) || return 1
	# Copies of dial-cgo that each keep only one of the two marks the
	# launcher knows Go by, and one without section headers (as sstrip
	# leaves it: only program headers remain, and the kernel still runs it).
	python3 - "$GODIR/dial-cgo" <<'PY' || return 1
import struct, sys
src = sys.argv[1]
b = bytes(open(src, "rb").read())
def save(name, data):
    open(src.replace("dial-cgo", name), "wb").write(data)
magic = b.index(b"\xff Go buildinf:")
# The build-ID note: namesz 4, type 4, name "Go\0\0".
note = next(i for i in range(12, len(b), 4) if b[i:i + 4] == b"Go\0\0"
            and struct.unpack_from("<I", b, i - 12)[0] == 4
            and struct.unpack_from("<I", b, i - 4)[0] == 4)
save("dial-nomagic", b[:magic] + b"x" * 14 + b[magic + 14:])
save("dial-nonote", b[:note] + b"Xx" + b[note + 2:])
h = bytearray(b)
struct.pack_into("<Q", h, 0x28, 0)          # e_shoff
struct.pack_into("<HHH", h, 0x3a, 0, 0, 0)  # e_shentsize, e_shnum, e_shstrndx
save("dial-nosections", bytes(h))
PY
	chmod +x "$GODIR/dial-nomagic" "$GODIR/dial-nonote" "$GODIR/dial-nosections"
}

teardown_file() {
	stop_servers
}

teardown() {
	if mountpoint -q "$BATS_TEST_TMPDIR/nx" 2>/dev/null; then
		umount "$BATS_TEST_TMPDIR/nx"
	fi
}

@test "--help fits a screen and names every mode" {
	run timeout 10 "$TLSSHIM" --help
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -le 24 ]
	for l in "${lines[@]}"; do [ "${#l}" -le 80 ]; done
	for w in --check --explain --probe " on" -p -l --allow-unprotected tlsshim.conf; do
		[[ "$output" == *"$w"* ]]
	done
}

@test "--version prints the version" {
	run timeout 10 "$TLSSHIM" --version
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^tlsshim\ [0-9]+\.[0-9]+ ]]
}

@test "--check reports every error of every file as path:line:col" {
	local d=$BATS_TEST_TMPDIR
	printf 'log-level = loud\n[a]\nmatch = 99999\nbogus = 1\n' >"$d/bad1.conf"
	printf '[b]\nsni = x.test\nlog = carrier-pigeon\n' >"$d/bad2.conf"
	printf 'log = syslog\n[c]\nmatch = 80\n' >"$d/ok.conf"
	run timeout 10 "$TLSSHIM" --check "$d/bad1.conf" "$d/ok.conf" "$d/bad2.conf"
	[ "$status" -eq 1 ]
	[[ "$output" == *"$d/bad1.conf:1:13: bad log-level 'loud'"* ]]
	[[ "$output" == *"$d/bad1.conf:3:9:"* ]]
	[[ "$output" == *"$d/bad1.conf:4:1: unknown key 'bogus'"* ]]
	[[ "$output" == *"$d/bad2.conf:3:1: 'log' is a global key"* ]]
	[[ "$output" == *"$d/bad2.conf:1:"*"has no 'match'"* ]]
	[[ "$output" != *"$d/ok.conf"* ]]
}

@test "--check accepts log-file and refuses one in a missing directory" {
	local d=$BATS_TEST_TMPDIR
	printf 'log-file = logs/t.log\n' >"$d/a.conf"
	run timeout 10 "$TLSSHIM" --check "$d/a.conf"
	[ "$status" -eq 1 ]
	[[ "$output" == *"$d/a.conf:1:12: bad log-file $d/logs/t.log: its directory: No such file or directory"* ]]
	mkdir "$d/logs"
	run timeout 10 "$TLSSHIM" --check "$d/a.conf"
	[ "$status" -eq 0 ]
}

@test "--explain shows rule, port, name, trust anchors, pins, versions, ALPN" {
	run timeout 10 "$TLSSHIM" --explain "$POL" 127.0.0.1:1081
	[ "$status" -eq 0 ]
	[[ "$output" == *"rule:          [named] (line 6)"* ]]
	[[ "$output" == *"port $GOOD (tls-port) instead of 1081"* ]]
	[[ "$output" == *"SNI sent:      localhost"* ]]
	[[ "$output" == *"name verified: localhost (sni of the rule)"* ]]
	[[ "$output" == *"trust anchors: $CERTS/ca.pem (1 certificate)"* ]]
	[[ "$output" == *"pins:"* ]]
	[[ "$output" == *"versions:      TLS1.2, TLS1.3"* ]]
	[[ "$output" == *"ALPN:"* ]]
}

@test "--explain: an IP-only rule verifies the address; no match says plaintext" {
	run timeout 10 "$TLSSHIM" --explain "$POL" 127.0.0.1:1080
	[ "$status" -eq 0 ]
	[[ "$output" == *"name verified: 127.0.0.1 (the IP address"* ]]
	run timeout 10 "$TLSSHIM" --explain "$POL" 127.0.0.1:9
	[ "$status" -eq 0 ]
	[[ "$output" == *"no rule matches: the connection is left alone (plaintext)"* ]]
}

@test "--explain NAME:PORT resolves the name and explains each address" {
	run timeout 10 "$TLSSHIM" --explain "$POL" localhost:1083
	[ "$status" -eq 0 ]
	[[ "$output" == *"127.0.0.1:1083 (localhost)"* ]]
	# The name rule applies when the program resolves the name through
	# libc (the preload learns it); not when it resolves it itself.
	[[ "$output" == *"a program that resolves localhost through libc (tlsshim learns the name):
    verdict:       upgrade: rule byname, verifying localhost (name the program resolved)"* ]]
	[[ "$output" == *"a program that does not (it was given the address, or resolves the name itself, as curl does for localhost):
    verdict:       pass: no rule matches; not upgraded"* ]]
	run timeout 10 "$TLSSHIM" --explain "$POL" nonsense
	[ "$status" -ne 0 ]
	[[ "$output" == *"bad destination 'nonsense'"* ]]
}

# A policy with server rules: --explain :PORT lists the accept rules for
# the port in the order the preload tries them; an address shows both
# sides (what is accepted on it, what connects to it).
server_policy() {
	cat >"$BATS_TEST_TMPDIR/s.conf" <<P
[in-local]
accept = 127.0.0.1:7000, [::1]:7000
cert = $CERTS/good.pem
key = $CERTS/good.key
client-ca = $CERTS/ca.pem
client-name = app1.internal, spiffe://test/app2
alpn = redis

[in-any]
accept = 7000-7001
cert = $CERTS/good.pem
key = $CERTS/good.key

[out]
match = 127.0.0.1:7002
ca-file = $CERTS/ca.pem
P
}

@test "--explain :PORT shows each accept rule: addresses, certificate, client checks" {
	server_policy
	run timeout 10 "$TLSSHIM" --check "$BATS_TEST_TMPDIR/s.conf"
	[ "$status" -eq 0 ]
	run timeout 10 "$TLSSHIM" --explain "$BATS_TEST_TMPDIR/s.conf" :7000
	[ "$status" -eq 0 ]
	[[ "$output" == *"connections the program accepts on port 7000:
  on 127.0.0.1, [::1]:
    verdict:       serve TLS: rule in-local; the program reads the client's first byte only after the handshake and the client's verification"* ]]
	[[ "$output" == *"certificate:   $CERTS/good.pem (1 certificate, re-read when it changes)"* ]]
	[[ "$output" == *"clients:       a certificate is required, chained to $CERTS/ca.pem (1 certificate)"* ]]
	[[ "$output" == *"client-name:   app1.internal (one of these must be a SAN of the client)"* ]]
	[[ "$output" == *"client-name:   spiffe://test/app2"* ]]
	[[ "$output" == *"checks:        client chain, client-auth key purpose, client-name"* ]]
	# The port-only rule takes every other address; nothing is left.
	[[ "$output" == *"  on any other local address:
    verdict:       serve TLS: rule in-any; the program reads the client's first byte only after the handshake"* ]]
	[[ "$output" == *"clients:       no certificate asked: any TLS client may connect"* ]]
	[[ "$output" != *"left alone"* ]]
	run timeout 10 "$TLSSHIM" --explain "$BATS_TEST_TMPDIR/s.conf" :7003
	[ "$status" -eq 0 ]
	[[ "$output" == *"  on any local address:
    verdict:       pass: no accept rule matches; connections accepted there are left alone (plaintext)"* ]]
	run timeout 10 "$TLSSHIM" --explain "$BATS_TEST_TMPDIR/s.conf" :0
	[ "$status" -eq 2 ]
	[[ "$output" == *"bad local port ':0'"* ]]
}

@test "--explain IP:PORT under a policy with accept rules shows both sides" {
	server_policy
	run timeout 10 "$TLSSHIM" --explain "$BATS_TEST_TMPDIR/s.conf" 127.0.0.1:7001
	[ "$status" -eq 0 ]
	[[ "$output" == *"  accepted on this local address (accept rules):
    verdict:       serve TLS: rule in-any;"* ]]
	[[ "$output" == *"  connected to (match rules):
    verdict:       pass: no rule matches; not upgraded"* ]]
	run timeout 10 "$TLSSHIM" --explain "$BATS_TEST_TMPDIR/s.conf" 127.0.0.1:7002
	[ "$status" -eq 0 ]
	[[ "$output" == *"  accepted on this local address (accept rules):
    verdict:       pass: no accept rule matches"* ]]
	[[ "$output" == *"    verdict:       upgrade: rule out, verifying 127.0.0.1"* ]]
}

@test "--probe prints the negotiated session, the chain with pin-sha256, the verdict" {
	local pin
	pin=$(certtool --certificate-info --infile "$CERTS/srv.pem" |
		sed -n 's/.*pin-sha256:\([A-Za-z0-9+/=]*\).*/\1/p' | head -1)
	[ -n "$pin" ]
	run timeout 20 "$TLSSHIM" --probe "$POL" 127.0.0.1:1081
	[ "$status" -eq 0 ]
	[[ "$output" == *"connecting to 127.0.0.1:$GOOD, verifying localhost"* ]]
	[[ "$output" == *"version: TLS1."* ]]
	[[ "$output" == *"cipher: "* ]]
	[[ "$output" == *"subject: CN=good"* ]]
	[[ "$output" == *"issuer: CN=tlsshim test CA"* ]]
	[[ "$output" == *"validity: "*" to "* ]]
	[[ "$output" == *"san: DNS:localhost"* ]]
	[[ "$output" == *"san: IP:127.0.0.1"* ]]
	[[ "$output" == *"pin-sha256: $pin"* ]]
	[[ "$output" == *"verdict: OK: verified localhost"* ]]
}

@test "--probe a server with the wrong name: chain shown, verdict FAILED with GnuTLS's reason" {
	run timeout 20 "$TLSSHIM" --probe "$POL" 127.0.0.1:1082
	[ "$status" -eq 1 ]
	[[ "$output" == *"subject: CN=wrongname"* ]]
	[[ "$output" == *"pin-sha256: "* ]]
	[[ "$output" == *"verdict: FAILED: The certificate is NOT trusted. The name in the certificate does not match the expected."* ]]
}

@test "run a command: -p and -l info upgrade its connection and log it" {
	run timeout 20 "$TLSSHIM" -p "$POL" -l info -- curl -sS http://127.0.0.1:1080/x
	[ "$status" -eq 0 ]
	[[ "$output" == *"hello over tls"* ]]
	[[ "$output" == *"tlsshim: info: curl: rule good 127.0.0.1:1080 (127.0.0.1): TLS1."*", verified"* ]]
	[[ "$output" == *"bytes out"*"bytes in"* ]]
}

@test "run a command: a bad policy or level is refused before running it" {
	printf '[x]\n' >"$BATS_TEST_TMPDIR/bad.conf"
	run timeout 10 "$TLSSHIM" -p "$BATS_TEST_TMPDIR/bad.conf" -- touch "$BATS_TEST_TMPDIR/ran"
	[ "$status" -eq 2 ]
	[ ! -e "$BATS_TEST_TMPDIR/ran" ]
	run timeout 10 "$TLSSHIM" -p "$POL" -l loud -- true
	[ "$status" -eq 2 ]
	[[ "$output" == *"bad log level 'loud'"* ]]
}

@test "run a command: without any policy it refuses rather than run plaintext" {
	mkdir "$BATS_TEST_TMPDIR/empty"
	TLSSHIM_POLICY= TLSSHIM_POLICY_DIR="$BATS_TEST_TMPDIR/empty" \
		run timeout 10 "$TLSSHIM" curl http://127.0.0.1:1080/
	[ "$status" -eq 2 ]
	[[ "$output" == *"no policy"* ]]
	# <program>.conf in the policy directory is picked up.
	cp "$POL" "$BATS_TEST_TMPDIR/empty/curl.conf"
	TLSSHIM_POLICY= TLSSHIM_POLICY_DIR="$BATS_TEST_TMPDIR/empty" \
		run timeout 20 "$TLSSHIM" curl -sS http://127.0.0.1:1080/
	[ "$status" -eq 0 ]
	[[ "$output" == *"hello over tls"* ]]
}

@test "a statically linked target is refused with a clear message" {
	printf 'int main(void){return 0;}\n' >"$BATS_TEST_TMPDIR/s.c"
	gcc -static -o "$BATS_TEST_TMPDIR/static" "$BATS_TEST_TMPDIR/s.c"
	run timeout 10 "$TLSSHIM" -p "$POL" -- "$BATS_TEST_TMPDIR/static"
	[ "$status" -eq 126 ]
	[[ "$output" == *"refusing to run: $BATS_TEST_TMPDIR/static is statically linked"*"LD_PRELOAD cannot reach it"* ]]
	# A script whose interpreter is static: the interpreter is checked.
	printf '#!%s\n' "$BATS_TEST_TMPDIR/static" >"$BATS_TEST_TMPDIR/script"
	chmod +x "$BATS_TEST_TMPDIR/script"
	run timeout 10 "$TLSSHIM" -p "$POL" -- "$BATS_TEST_TMPDIR/script"
	[ "$status" -eq 126 ]
	[[ "$output" == *"statically linked"* ]]
	# A dynamic script interpreter runs; PATH lookup like execvp.
	printf '#!/bin/sh\necho script-ran\n' >"$BATS_TEST_TMPDIR/okscript"
	chmod +x "$BATS_TEST_TMPDIR/okscript"
	PATH="$BATS_TEST_TMPDIR:$PATH" run timeout 10 "$TLSSHIM" -p "$POL" okscript
	[ "$status" -eq 0 ]
	[ "$output" = script-ran ]
	run timeout 10 "$TLSSHIM" -p "$POL" no-such-command-here
	[ "$status" -eq 127 ]
	[[ "$output" == *"no-such-command-here: command not found"* ]]
}

@test "a setuid target is refused unless --allow-unprotected" {
	[ "$(id -u)" -eq 0 ] || { echo "this test needs root (to chown a setuid copy to another user)" >&2; return 1; }
	cp /bin/true "$BATS_TEST_TMPDIR/suid-true"
	chown nobody "$BATS_TEST_TMPDIR/suid-true"
	chmod 4755 "$BATS_TEST_TMPDIR/suid-true"
	run timeout 10 "$TLSSHIM" -p "$POL" -- "$BATS_TEST_TMPDIR/suid-true"
	[ "$status" -eq 126 ]
	[[ "$output" == *"setuid, setgid or has file capabilities"*"--allow-unprotected"* ]]
	run timeout 10 "$TLSSHIM" -p "$POL" --allow-unprotected -- "$BATS_TEST_TMPDIR/suid-true"
	[ "$status" -eq 0 ]
	[[ "$output" == *"runs unprotected"* ]]
}

@test "eval \"\$(tlsshim on)\" preloads this shell's commands; off undoes it" {
	run timeout 10 sh -c '
		export LD_PRELOAD=
		eval "$("$1" -p "$2" -l info on)" || exit 9
		echo "PRELOAD=$LD_PRELOAD"
		echo "POLICY=$TLSSHIM_POLICY"
		curl -sS http://127.0.0.1:1080/on
		eval "$("$1" off)" || exit 9
		echo "AFTER=${LD_PRELOAD-unset} ${TLSSHIM_POLICY-unset}"' sh "$TLSSHIM" "$POL"
	[ "$status" -eq 0 ]
	[[ "$output" == *"PRELOAD=$BUILD/src/libtlsshim.so"* ]]
	[[ "$output" == *"POLICY=$POL"* ]]
	[[ "$output" == *"hello over tls"* ]]
	[[ "$output" == *"tlsshim: info: curl: rule good"* ]]
	[[ "$output" == *"AFTER=unset unset"* ]]
}

@test "tlsshim ./script.sh: script.sh.conf from the policy directory is what the programs inside run with" {
	local d=$BATS_TEST_TMPDIR
	mkdir "$d/pol" "$d/work"
	cat >"$d/pol/script.sh.conf" <<P
[web]
match = 127.0.0.1:$GOOD
ca-file = $CERTS/ca.pem

[rec]
match = 127.0.0.1:$REC
ca-file = $CERTS/ca.pem
P
	# default.conf comes after script.sh.conf: with it, curl would fail
	# (a name the server's certificate does not have).
	printf '[web]\nmatch = 127.0.0.1:%s\nsni = other.invalid\nca-file = %s\n' \
		"$GOOD" "$CERTS/ca.pem" >"$d/pol/default.conf"
	# The processes inside are sh and curl, in another directory.
	printf '#!/bin/sh\ncd / || exit 9\nexec curl -sS "$@"\n' >"$d/work/script.sh"
	chmod +x "$d/work/script.sh"
	cd "$d/work"
	TLSSHIM_POLICY= TLSSHIM_POLICY_DIR=../pol \
		run timeout 20 "$TLSSHIM" ./script.sh "http://127.0.0.1:$GOOD/x"
	[ "$status" -eq 0 ]
	[ "$output" = "hello over tls" ]
	# Against a plain listener the handshake fails: the request with its
	# marker never goes out.
	TLSSHIM_POLICY= TLSSHIM_POLICY_DIR=../pol \
		run timeout 20 "$TLSSHIM" ./script.sh "http://127.0.0.1:$REC/SCRIPT-MARK"
	[ "$status" -ne 0 ]
	[[ "$output" == *"tlsshim: error: rec 127.0.0.1:$REC"* ]]
	expect_recorded rec SCRIPT-MARK 0
	# Only default.conf: that one, for every process inside.
	rm "$d/pol/script.sh.conf"
	TLSSHIM_POLICY= TLSSHIM_POLICY_DIR=../pol \
		run timeout 20 "$TLSSHIM" ./script.sh "http://127.0.0.1:$GOOD/x"
	[ "$status" -ne 0 ]
	[[ "$output" == *"tlsshim: error: web 127.0.0.1:$GOOD"*"other.invalid"* ]]
}

@test "tlsshim ./script.sh: a broken script.sh.conf is refused with path:line:col, the script never runs" {
	local d=$BATS_TEST_TMPDIR
	mkdir "$d/pol"
	printf '[web]\nmatch = 99999\nbogus = 1\n' >"$d/pol/script.sh.conf"
	printf '#!/bin/sh\ntouch "%s/ran"\n' "$d" >"$d/script.sh"
	chmod +x "$d/script.sh"
	cd "$d"
	TLSSHIM_POLICY= TLSSHIM_POLICY_DIR="$d/pol" run timeout 10 "$TLSSHIM" ./script.sh
	[ "$status" -eq 2 ]
	[[ "$output" == *"$d/pol/script.sh.conf:2:9: bad port '99999'"* ]]
	[[ "$output" == *"$d/pol/script.sh.conf:3:1: unknown key 'bogus'"* ]]
	[ ! -e "$d/ran" ]
}

@test "a Go program, static or with cgo, is refused: its marker never reaches the listener" {
	[ -z "$(readelf -lW "$GODIR/dial-static" | grep 'program interpreter')" ]
	readelf -lW "$GODIR/dial-cgo" | grep -q 'program interpreter'
	readelf -dW "$GODIR/dial-cgo" | grep -q 'libc.so'
	for kind in static cgo; do
		local bin=$GODIR/dial-$kind
		# Without the launcher nothing stops it: the marker goes out
		# in plaintext although the policy selects the address.
		LD_PRELOAD=$LIB TLSSHIM_POLICY=$RECPOL \
			timeout 10 "$bin" "127.0.0.1:$REC" "GO-$kind-DIRECT"
		expect_recorded rec "GO-$kind-DIRECT" 1
		run timeout 10 "$TLSSHIM" -p "$RECPOL" -- "$bin" "127.0.0.1:$REC" "GO-$kind-LAUNCHED"
		[ "$status" -eq 126 ]
		[[ "$output" == "tlsshim: refusing to run: $bin is a Go program: Go makes its own system calls (with cgo too), so LD_PRELOAD cannot see its connections and they would stay plaintext; use a TLS tunnel" ]]
		expect_recorded rec "GO-$kind-LAUNCHED" 0
	done
}

@test "a Go program is refused by either mark, without section headers, through #!, through env, despite --allow-unprotected" {
	local bin
	[ -z "$(readelf -SW "$GODIR/dial-nosections" 2>/dev/null | grep buildinfo)" ]
	for bin in "$GODIR/dial-nomagic" "$GODIR/dial-nonote" "$GODIR/dial-nosections"; do
		run timeout 10 "$TLSSHIM" -p "$RECPOL" -- "$bin" "127.0.0.1:$REC" GO-VARIANT
		[ "$status" -eq 126 ]
		[[ "$output" == *"$bin is a Go program"* ]]
	done
	printf '#!%s 127.0.0.1:%s\n' "$GODIR/dial-static" "$REC" >"$BATS_TEST_TMPDIR/shebang"
	printf '#!/usr/bin/env -S dial-cgo 127.0.0.1:%s\n' "$REC" >"$BATS_TEST_TMPDIR/envshebang"
	chmod +x "$BATS_TEST_TMPDIR/shebang" "$BATS_TEST_TMPDIR/envshebang"
	run timeout 10 "$TLSSHIM" -p "$RECPOL" -- "$BATS_TEST_TMPDIR/shebang"
	[ "$status" -eq 126 ]
	[[ "$output" == *"$GODIR/dial-static is a Go program"* ]]
	PATH="$GODIR:$PATH" run timeout 10 "$TLSSHIM" -p "$RECPOL" -- "$BATS_TEST_TMPDIR/envshebang"
	[ "$status" -eq 126 ]
	[[ "$output" == *"$GODIR/dial-cgo is a Go program"* ]]
	PATH="$GODIR:$PATH" run timeout 10 "$TLSSHIM" -p "$RECPOL" --allow-unprotected -- env FOO=1 dial-cgo "127.0.0.1:$REC" GO-ENV
	[ "$status" -eq 126 ]
	[[ "$output" == *"$GODIR/dial-cgo is a Go program"* ]]
	expect_recorded rec GO-VARIANT 0
	expect_recorded rec GO-ENV 0
	# What the shebang scripts would have sent: their own path.
	expect_recorded rec shebang 0
}

@test "env that drops LD_PRELOAD or TLSSHIM_POLICY is refused; env that keeps them runs, upgraded" {
	local u="http://127.0.0.1:$REC"
	# Without the launcher's check: env -i sends the request in plaintext.
	LD_PRELOAD=$LIB TLSSHIM_POLICY=$RECPOL timeout 10 env -i curl -s "$u/ENV-DIRECT" || true
	expect_recorded rec ENV-DIRECT 1
	for e in "-i" "-" "-u LD_PRELOAD" "--unset=TLSSHIM_POLICY" "LD_PRELOAD=" "TLSSHIM_POLICY=/dev/null" "-S -i"; do
		# shellcheck disable=SC2086
		run timeout 10 "$TLSSHIM" -p "$RECPOL" -- env $e curl -s "$u/ENV-MARK"
		[ "$status" -eq 126 ]
		[[ "$output" == *"would drop the preload or its policy"* ]]
	done
	printf '#!/usr/bin/env -S -i curl -s %s/ENV-MARK\n' "$u" >"$BATS_TEST_TMPDIR/envi"
	chmod +x "$BATS_TEST_TMPDIR/envi"
	run timeout 10 "$TLSSHIM" -p "$RECPOL" -- "$BATS_TEST_TMPDIR/envi"
	[ "$status" -eq 126 ]
	[[ "$output" == *"env -i would drop the preload"* ]]
	expect_recorded rec ENV-MARK 0
	run timeout 20 "$TLSSHIM" -p "$POL" -- env -u HOME FOO=1 curl -sS http://127.0.0.1:1080/env
	[ "$status" -eq 0 ]
	[ "$output" = "hello over tls" ]
}

@test "a 32-bit program (the preload is 64-bit) is refused: the loader would skip the preload" {
	[ -e /lib32/libc.so.6 ] || { echo "no 32-bit libc (tests/bootstrap.sh installs libc6-i386)" >&2; return 1; }
	local bin=$BATS_TEST_TMPDIR/client32 m
	for m in DIRECT LAUNCHED; do
		gcc -m32 -fno-pie -no-pie -nostdlib -nostartfiles -DNO_START \
			-DPORT="$REC" -DMARK="\"I386-$m\"" -o "$bin-$m" \
			"$BATS_TEST_DIRNAME/tool/markclient.c" /lib32/libc.so.6 \
			-Wl,-dynamic-linker,/lib/ld-linux.so.2
	done
	# Without the launcher: glibc's warning, then plaintext.
	run timeout 10 env LD_PRELOAD="$LIB" TLSSHIM_POLICY="$RECPOL" "$bin-DIRECT"
	[ "$status" -eq 0 ]
	[[ "$output" == *"wrong ELF class: ELFCLASS64"* ]]
	expect_recorded rec I386-DIRECT 1
	bin=$bin-LAUNCHED
	run timeout 10 "$TLSSHIM" -p "$RECPOL" -- "$bin"
	[ "$status" -eq 126 ]
	[[ "$output" == *"refusing to run: $bin is built for 32-bit i386 (machine 3) and the preload for 64-bit x86-64 (machine 62): the loader skips a preload of another kind"*"use a TLS tunnel"* ]]
	expect_recorded rec I386-LAUNCHED 0
}

@test "a musl program (another program interpreter) is refused" {
	require_tool musl-gcc
	local bin=$BATS_TEST_TMPDIR/client-musl
	musl-gcc -DPORT="$REC" -DMARK='"MUSL-MARK"' -o "$bin" \
		"$BATS_TEST_DIRNAME/tool/markclient.c"
	readelf -lW "$bin" | grep -q 'interpreter: /lib/ld-musl'
	# It runs and connects (no preload).
	run timeout 10 "$bin"
	[ "$status" -eq 0 ]
	expect_recorded rec MUSL-MARK 1
	run timeout 10 "$TLSSHIM" -p "$RECPOL" -- "$bin"
	[ "$status" -eq 126 ]
	[[ "$output" == *"refusing to run: $bin asks for the program interpreter /lib/ld-musl-"*"not the dynamic loader the preload is built for"* ]]
	expect_recorded rec MUSL-MARK 1
}

@test "a preload on a noexec mount is refused: the loader would skip it" {
	[ "$(id -u)" -eq 0 ] || { echo "this test needs root (to mount a noexec tmpfs)" >&2; return 1; }
	local d=$BATS_TEST_TMPDIR u="http://127.0.0.1:$REC"
	mkdir "$d/nx" "$d/bin"
	mount -t tmpfs -o noexec,size=16m tmpfs "$d/nx"
	cp "$LIB" "$d/nx/"
	# The launcher finds the preload beside itself.
	cp "$TLSSHIM" "$d/bin/tlsshim"
	ln -s "$d/nx/libtlsshim.so" "$d/bin/libtlsshim.so"
	# Without the launcher: the loader skips it, the request goes out plain.
	run timeout 10 env LD_PRELOAD="$d/nx/libtlsshim.so" TLSSHIM_POLICY="$RECPOL" \
		curl -s "$u/NOEXEC-DIRECT"
	[[ "$output" == *"failed to map segment"* ]]
	expect_recorded rec NOEXEC-DIRECT 1
	run timeout 10 "$d/bin/tlsshim" -p "$RECPOL" -- curl -s "$u/NOEXEC-LAUNCHED"
	[ "$status" -eq 126 ]
	[[ "$output" == *"refusing to run: the preload $d/bin/libtlsshim.so is on a noexec mount"* ]]
	expect_recorded rec NOEXEC-LAUNCHED 0
}
