#!/bin/sh
# Throwaway CA and server certificates for the io tests (certtool).
#   gencerts.sh DIR  ->  DIR/ca.pem, DIR/server.{pem,key} (127.0.0.1, ::1,
#   io.test, localhost), DIR/wrong.{pem,key} (only wrong.test: refused)
set -eu
d=$1
mkdir -p "$d"
cd "$d"
certtool --generate-privkey --key-type=ecdsa --outfile ca.key 2>/dev/null
cat > ca.tmpl <<T
cn = "tlsshim io test CA"
ca
cert_signing_key
expiration_days = 2
T
certtool --generate-self-signed --load-privkey ca.key --template ca.tmpl \
	--outfile ca.pem 2>/dev/null
for n in server wrong; do
	certtool --generate-privkey --key-type=ecdsa --outfile $n.key 2>/dev/null
	if [ $n = server ]; then
		cat > $n.tmpl <<T
cn = "io.test"
dns_name = "io.test"
dns_name = "localhost"
ip_address = "127.0.0.1"
ip_address = "::1"
tls_www_server
expiration_days = 2
T
	else
		cat > $n.tmpl <<T
cn = "wrong.test"
dns_name = "wrong.test"
tls_www_server
expiration_days = 2
T
	fi
	certtool --generate-certificate --load-privkey $n.key \
		--load-ca-certificate ca.pem --load-ca-privkey ca.key \
		--template $n.tmpl --outfile $n.pem 2>/dev/null
done
