#!/bin/sh
# gencerts-verify.sh DIR: gencerts.sh's PKI plus what the verification
# suites need, in the same directory:
#   inter.pem/.key          an intermediate CA under ca
#   chained.pem/.key        leaf under inter (localhost, 127.0.0.1)
#   chained-full.pem        chained.pem followed by inter.pem
#   revoked.pem/.key        leaf under ca, revoked by ca.crl
#   ca.crl                  CRL signed by ca, revoking revoked.pem
#   other.crl               CRL signed by other-ca (fails verification)
#   rsa1024.pem/.key        RSA-1024 leaf under ca
#   sha1.pem/.key           leaf under ca signed with SHA-1
#   mustaple.pem/.key       leaf under ca with the TLS feature status_request
#   nameonly.pem/.key       leaf under ca for DNS:localhost only (no IP SAN)
#   client.pem/.key         TLS client certificate under ca
#   mustaple-good.ocsp      OCSP response (DER, by ca): mustaple.pem good
#   mustaple-revoked.ocsp   the same, revoked
#   good-revoked.ocsp       OCSP response: good.pem revoked
# Idempotent: an existing good-revoked.ocsp means the set is complete.
set -eu
dir=$1
here=$(cd "$(dirname "$0")" && pwd)
sh "$here/gencerts.sh" "$dir"
cd "$dir"
[ -s good-revoked.ocsp ] && exit 0

key() { certtool --generate-privkey --key-type=ecdsa --curve=secp256r1 \
	--outfile "$1" >/dev/null 2>&1; }

tmpl() { # name cn extra-lines...
	f=$1.tmpl; shift
	printf 'cn = "%s"\n' "$1" > "$f"; shift
	for l in "$@"; do printf '%s\n' "$l" >> "$f"; done
}

sign() { # name issuer [certtool args]
	name=$1 issuer=$2; shift 2
	certtool --generate-certificate --load-privkey "$name.key" \
		--load-ca-certificate "$issuer.pem" \
		--load-ca-privkey "$issuer.key" --template "$name.tmpl" \
		--outfile "$name.pem" "$@" >/dev/null 2>&1
}

leaf() { # name issuer template-lines...
	name=$1 issuer=$2; shift 2
	key "$name.key"
	tmpl "$name" "$name" signing_key "$@"
	sign "$name" "$issuer"
}

localhost='dns_name = "localhost"
ip_address = "127.0.0.1"'
days='expiration_days = 30'

key inter.key
tmpl inter "tlsshim test intermediate" ca cert_signing_key crl_signing_key \
	"$days"
sign inter ca
leaf chained inter tls_www_server "$days" "$localhost"
cat chained.pem inter.pem > chained-full.pem

leaf revoked ca tls_www_server "$days" "$localhost" 'serial = 4242'
printf 'crl_next_update = 30\ncrl_number = 1\n' > crl.tmpl
certtool --generate-crl --load-ca-privkey ca.key \
	--load-ca-certificate ca.pem --load-certificate revoked.pem \
	--template crl.tmpl --outfile ca.crl >/dev/null 2>&1
certtool --generate-crl --load-ca-privkey other-ca.key \
	--load-ca-certificate other-ca.pem --template crl.tmpl \
	--outfile other.crl >/dev/null 2>&1

certtool --generate-privkey --key-type=rsa --bits=1024 \
	--outfile rsa1024.key >/dev/null 2>&1
tmpl rsa1024 rsa1024 signing_key encryption_key tls_www_server "$days" \
	"$localhost"
sign rsa1024 ca

key sha1.key
tmpl sha1 sha1 signing_key tls_www_server "$days" "$localhost"
sign sha1 ca --hash SHA1

leaf mustaple ca tls_www_server "$days" "$localhost" 'tls_feature = 5'
leaf nameonly ca tls_www_server "$days" 'dns_name = "localhost"'
leaf client ca tls_www_client "$days"

ocsp() { # cert V|R out
	serial=$(openssl x509 -in "$1.pem" -noout -serial | cut -d= -f2)
	if [ "$2" = V ]; then
		printf 'V\t391231235959Z\t\t%s\tunknown\t/CN=%s\n' \
			"$serial" "$1" > index.txt
	else
		printf 'R\t391231235959Z\t240101000000Z\t%s\tunknown\t/CN=%s\n' \
			"$serial" "$1" > index.txt
	fi
	openssl ocsp -index index.txt -rsigner ca.pem -rkey ca.key -CA ca.pem \
		-issuer ca.pem -cert "$1.pem" -respout "$3" -ndays 30 \
		>/dev/null 2>&1
	rm -f index.txt
}
ocsp mustaple V mustaple-good.ocsp
ocsp mustaple R mustaple-revoked.ocsp
ocsp good R good-revoked.ocsp
rm -f ./*.tmpl
for f in inter chained chained-full revoked rsa1024 sha1 mustaple nameonly \
	client; do
	[ -s "$f.pem" ] || { echo "gencerts-verify: $f.pem not made" >&2; exit 1; }
done
for f in mustaple-good mustaple-revoked good-revoked; do
	[ -s "$f.ocsp" ] || { echo "gencerts-verify: $f.ocsp not made" >&2; exit 1; }
done
[ -s ca.crl ] && [ -s other.crl ] || { echo "gencerts-verify: no CRL" >&2; exit 1; }
