#!/usr/bin/env bats
# The launcher: help, version, --check, --explain, --probe, on/off, and the
# targets it refuses.

load tool/common

setup_file() {
	require_tool certtool python3 curl gcc
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
}

teardown_file() {
	stop_all
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
	[[ "$output" == *"PRELOAD=$TLSSHIM_BUILD/src/libtlsshim.so"* ]]
	[[ "$output" == *"POLICY=$POL"* ]]
	[[ "$output" == *"hello over tls"* ]]
	[[ "$output" == *"tlsshim: info: curl: rule good"* ]]
	[[ "$output" == *"AFTER=unset unset"* ]]
}
