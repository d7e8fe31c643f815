#!/bin/sh
# gencerts.sh DIR: a throwaway PKI for tests and the demonstration.
#   ca.pem/ca.key           the CA tests trust
#   good.pem/.key           localhost, 127.0.0.1, ::1, TLS server purpose
#   wrongname.pem/.key      other.invalid only
#   expired.pem/.key        validity entirely in the past
#   notyet.pem/.key         validity entirely in the future
#   unknownca.pem/.key      signed by a CA nobody trusts (other-ca.pem)
#   selfsigned.pem/.key     self-signed localhost
#   noserverauth.pem/.key   signed by the CA, TLS client purpose only
# Idempotent: noserverauth.pem, written last, means the set is complete.
set -eu
dir=$1
mkdir -p "$dir"
cd "$dir"
[ -s noserverauth.pem ] && exit 0

key() { certtool --generate-privkey --key-type=ecdsa --curve=secp256r1 \
	--outfile "$1" >/dev/null 2>&1; }

tmpl() { # name cn extra-lines...
	f=$1.tmpl; shift
	printf 'cn = "%s"\n' "$1" > "$f"; shift
	for l in "$@"; do printf '%s\n' "$l" >> "$f"; done
}

ca() { # name cn
	key "$1.key"
	tmpl "$1" "$2" ca cert_signing_key crl_signing_key \
		'expiration_days = 30'
	certtool --generate-self-signed --load-privkey "$1.key" \
		--template "$1.tmpl" --outfile "$1.pem" >/dev/null 2>&1
}

leaf() { # name ca template-lines...
	name=$1 issuer=$2; shift 2
	key "$name.key"
	tmpl "$name" "$name" signing_key "$@"
	certtool --generate-certificate --load-privkey "$name.key" \
		--load-ca-certificate "$issuer.pem" \
		--load-ca-privkey "$issuer.key" --template "$name.tmpl" \
		--outfile "$name.pem" >/dev/null 2>&1
}

localhost='dns_name = "localhost"
ip_address = "127.0.0.1"
ip_address = "::1"'

ca ca "tlsshim test CA"
ca other-ca "an untrusted CA"
leaf good ca tls_www_server 'expiration_days = 30' "$localhost"
leaf wrongname ca tls_www_server 'expiration_days = 30' \
	'dns_name = "other.invalid"'
leaf expired ca tls_www_server "$localhost" \
	'activation_date = "2020-01-01 00:00:00 UTC"' \
	'expiration_date = "2020-02-01 00:00:00 UTC"'
leaf notyet ca tls_www_server "$localhost" \
	'activation_date = "2099-01-01 00:00:00 UTC"' \
	'expiration_date = "2099-02-01 00:00:00 UTC"'
leaf unknownca other-ca tls_www_server 'expiration_days = 30' "$localhost"
key selfsigned.key
tmpl selfsigned localhost tls_www_server signing_key \
	'expiration_days = 30' "$localhost"
certtool --generate-self-signed --load-privkey selfsigned.key \
	--template selfsigned.tmpl --outfile selfsigned.pem >/dev/null 2>&1
leaf noserverauth ca tls_www_client 'expiration_days = 30' "$localhost"
rm -f ./*.tmpl
