#!/usr/bin/env bats
# ldapsearch with the shipped policies/ldapsearch.conf: ldap:// to a slapd
# that listens only on ldaps:// on loopback (no database: the root DSE).

load helpers/common

setup_file() {
	require_tool certtool python3 slapd ldapsearch
	export CERTS="$BATS_FILE_TMPDIR/certs"
	gen_certs "$CERTS"
	export TLSP=$(free_port) PLAIN=$(free_port)
	cat >"$BATS_FILE_TMPDIR/slapd.conf" <<C
include /etc/ldap/schema/core.schema
pidfile $BATS_FILE_TMPDIR/slapd.pid
TLSCertificateFile $CERTS/good.pem
TLSCertificateKeyFile $CERTS/good.key
C
	# -d 0: in the foreground, so the PID is ours to kill.
	start_bg slapd -d 0 -f "$BATS_FILE_TMPDIR/slapd.conf" -h "ldaps://127.0.0.1:$TLSP/" \
		>"$BATS_FILE_TMPDIR/slapd.log" 2>&1
	wait_port "$TLSP"
	export POL="$BATS_FILE_TMPDIR/ldapsearch.conf"
	derive_policy "$POLICIES/ldapsearch.conf" "$POL" \
		-e "s/^match = 389\$/match = $PLAIN/" \
		-e "s/^tls-port = 636\$/tls-port = $TLSP/" \
		-e "s|^# ca-file = .*|ca-file = $CERTS/ca.pem|"
	grep -q "^tls-port = $TLSP\$" "$POL"
}

teardown_file() {
	stop_servers
}

@test "ldapsearch ldap:// reads the root DSE over verified TLS" {
	run timeout 20 "$TLSSHIM" -p "$POL" -l info \
		ldapsearch -x -H "ldap://127.0.0.1:$PLAIN" -b "" -s base supportedLDAPVersion
	[ "$status" -eq 0 ]
	[[ "$output" == *"supportedLDAPVersion: 3"* ]]
	[[ "$output" == *"tlsshim: info: ldapsearch: rule ldap 127.0.0.1:$PLAIN (127.0.0.1): TLS1."* ]]
}

@test "ldapsearch against a server it cannot verify: refused" {
	sed "s|^ca-file = .*|ca-file = $CERTS/other-ca.pem|" "$POL" >"$BATS_TEST_TMPDIR/bad.conf"
	run timeout 20 "$TLSSHIM" -p "$BATS_TEST_TMPDIR/bad.conf" \
		ldapsearch -x -H "ldap://127.0.0.1:$PLAIN" -b "" -s base supportedLDAPVersion
	[ "$status" -ne 0 ]
	[[ "$output" != *"supportedLDAPVersion: 3"* ]]
	[[ "$output" == *"tlsshim: error: ldap 127.0.0.1:$PLAIN (127.0.0.1): The certificate is NOT trusted"* ]]
}
