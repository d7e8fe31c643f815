#!/usr/bin/env bats
# mosquitto_sub and mosquitto_pub with the shipped policies against a
# mosquitto broker with only a TLS listener on loopback.

load helpers/common

setup_file() {
	require_tool certtool python3 mosquitto mosquitto_pub mosquitto_sub
	export CERTS="$BATS_FILE_TMPDIR/certs"
	gen_certs "$CERTS"
	export TLSP=$(free_port) PLAIN=$(free_port)
	cat >"$BATS_FILE_TMPDIR/mosquitto.conf" <<C
listener $TLSP 127.0.0.1
certfile $CERTS/srv.pem
keyfile $CERTS/srv.key
allow_anonymous true
user $(id -un)
C
	start_bg mosquitto -c "$BATS_FILE_TMPDIR/mosquitto.conf" >"$BATS_FILE_TMPDIR/mosquitto.log" 2>&1
	wait_port "$TLSP"
	for c in pub sub; do
		derive_policy "$POLICIES/mosquitto_$c.conf" "$BATS_FILE_TMPDIR/mosquitto_$c.conf" \
			-e "s/^match = 1883\$/match = $PLAIN/" \
			-e "s/^tls-port = 8883\$/tls-port = $TLSP/" \
			-e "s|^# ca-file = .*|ca-file = $CERTS/ca.pem|"
		grep -q "^tls-port = $TLSP\$" "$BATS_FILE_TMPDIR/mosquitto_$c.conf"
	done
}

teardown_file() {
	stop_servers
}

@test "mosquitto_sub receives what mosquitto_pub publishes, both over verified TLS" {
	local out=$BATS_TEST_TMPDIR/sub.out
	timeout 20 "$TLSSHIM" -p "$BATS_FILE_TMPDIR/mosquitto_sub.conf" -l info \
		mosquitto_sub -h 127.0.0.1 -p "$PLAIN" -t tlsshim/test -C 1 -W 15 >"$out" 2>&1 &
	local sub=$!
	# Publish (retained) once the subscriber is connected.
	for i in $(seq 1 100); do grep -q "verified" "$out" && break; sleep 0.1; done
	run timeout 20 "$TLSSHIM" -p "$BATS_FILE_TMPDIR/mosquitto_pub.conf" -l info \
		mosquitto_pub -h 127.0.0.1 -p "$PLAIN" -t tlsshim/test -m hello-mqtt
	[ "$status" -eq 0 ]
	[[ "$output" == *"tlsshim: info: mosquitto_pub: rule mqtt 127.0.0.1:$PLAIN (127.0.0.1): TLS1."* ]]
	wait "$sub"
	grep -q '^hello-mqtt$' "$out"
	grep -q "tlsshim: info: mosquitto_sub: rule mqtt 127.0.0.1:$PLAIN" "$out"
}

@test "mosquitto_pub to a broker it cannot verify: refused" {
	gen_certs "$BATS_TEST_TMPDIR/other"
	sed "s|^ca-file = .*|ca-file = $BATS_TEST_TMPDIR/other/ca.pem|" \
		"$BATS_FILE_TMPDIR/mosquitto_pub.conf" >"$BATS_TEST_TMPDIR/bad.conf"
	run timeout 20 "$TLSSHIM" -p "$BATS_TEST_TMPDIR/bad.conf" \
		mosquitto_pub -h 127.0.0.1 -p "$PLAIN" -t tlsshim/test -m nope
	[ "$status" -ne 0 ]
	[[ "$output" == *"tlsshim: error: mqtt 127.0.0.1:$PLAIN (127.0.0.1): The certificate is NOT trusted"* ]]
}
