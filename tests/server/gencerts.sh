#!/bin/sh
# gencerts.sh DIR: what server mode (issue 16) needs, on top of the shared
# throwaway PKI of tests/helpers/gencerts.sh (ca.pem, good.pem for
# localhost/127.0.0.1/::1, other-ca.pem, ...):
#   server2.pem/.key      a second server certificate (localhost,
#                         127.0.0.1, ::1) from ca: the rotation test
#   clients-ca.pem/.key   the CA that signs client certificates
#   app1                  DNS SAN app1.internal, client purpose
#   app1b                 app1.internal again, another key (pins)
#   app2                  URI SAN spiffe://test/app2 only
#   svc                   DNS SAN db.svc.internal (*.svc.internal)
#   apex                  DNS SAN svc.internal (not below svc.internal)
#   app9                  DNS SAN app9.internal: a name no rule allows
#   stranger              app1.internal, signed by other-ca
#   srvpurpose            app1.internal, server purpose only
#   cnonly                no SAN, only the common name cnonly.internal
#   longsan               CN cnonly.internal and one DNS SAN of 305 bytes
#   revoked               app1.internal, listed in clients.crl
#   clients.crl           clients-ca's CRL: revoked
#   oldclient             app1.internal, expired
#   *.pin                 each client key's pin-sha256 (base64)
# Idempotent: oldclient.pin, written last, means the set is complete.
set -eu
dir=$1
here=$(cd "$(dirname "$0")" && pwd)
sh "$here/../helpers/gencerts.sh" "$dir"
cd "$dir"
[ -s oldclient.pin ] && exit 0

# cert NAME ISSUER|self TEMPLATE-LINES...: a key and a certificate, its
# common name NAME unless a line gives one.
cert() {
	name=$1 issuer=$2
	shift 2
	certtool --generate-privkey --key-type=ecdsa --curve=secp256r1 \
		--outfile "$name.key" >/dev/null 2>&1
	: >"$name.tmpl"
	case "$*" in *'cn = '*) ;; *) printf 'cn = "%s"\n' "$name" >"$name.tmpl" ;; esac
	for l in "$@"; do printf '%s\n' "$l" >>"$name.tmpl"; done
	if [ "$issuer" = self ]; then
		certtool --generate-self-signed --load-privkey "$name.key" \
			--template "$name.tmpl" --outfile "$name.pem" >/dev/null 2>&1
	else
		certtool --generate-certificate --load-privkey "$name.key" \
			--load-ca-certificate "$issuer.pem" \
			--load-ca-privkey "$issuer.key" --template "$name.tmpl" \
			--outfile "$name.pem" >/dev/null 2>&1
	fi
	rm -f "$name.tmpl"
	certtool --certificate-info --infile "$name.pem" |
		sed -n 's/^[[:space:]]*pin-sha256:\([A-Za-z0-9+/=]*\)$/\1/p' |
		head -n 1 >"$name.pin.tmp"
	mv "$name.pin.tmp" "$name.pin"
}

days='expiration_days = 30'
client='tls_www_client
signing_key'

cert server2 ca tls_www_server signing_key "$days" \
	'dns_name = "localhost"' 'ip_address = "127.0.0.1"' 'ip_address = "::1"'
cert clients-ca self ca cert_signing_key crl_signing_key "$days"
cert app1 clients-ca "$client" "$days" 'dns_name = "app1.internal"'
cert app1b clients-ca "$client" "$days" 'dns_name = "app1.internal"'
cert app2 clients-ca "$client" "$days" 'uri = "spiffe://test/app2"'
cert svc clients-ca "$client" "$days" 'dns_name = "db.svc.internal"'
cert apex clients-ca "$client" "$days" 'dns_name = "svc.internal"'
cert app9 clients-ca "$client" "$days" 'dns_name = "app9.internal"'
cert stranger other-ca "$client" "$days" 'dns_name = "app1.internal"'
cert srvpurpose clients-ca tls_www_server signing_key "$days" \
	'dns_name = "app1.internal"'
cert cnonly clients-ca "$client" "$days" 'cn = "cnonly.internal"'
l60=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
cert longsan clients-ca "$client" "$days" 'cn = "cnonly.internal"' \
	"dns_name = \"$l60.$l60.$l60.$l60.$l60.internal\""
cert revoked clients-ca "$client" "$days" 'dns_name = "app1.internal"'
printf 'crl_next_update = 30\ncrl_number = 1\n' >crl.tmpl
certtool --generate-crl --load-ca-privkey clients-ca.key \
	--load-ca-certificate clients-ca.pem --load-certificate revoked.pem \
	--template crl.tmpl --outfile clients.crl >/dev/null 2>&1
rm -f crl.tmpl
cert oldclient clients-ca "$client" 'dns_name = "app1.internal"' \
	'activation_date = "2020-01-01 00:00:00 UTC"' \
	'expiration_date = "2020-02-01 00:00:00 UTC"'
