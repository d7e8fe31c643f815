#!/usr/bin/env python3
"""A TLS echo server that also records, raw, every byte a client sends
before TLS decryption: the proof that a refused connection carried no
plaintext. One process, one loopback port: each accepted socket is pumped
through a socketpair whose far end the ssl module serves.

  --cert/--key       the server certificate (PEM; --cert may be a chain)
  --raw FILE         append every byte received on the TCP socket to FILE
  --plain FILE       append every decrypted byte to FILE
  --tls-max 1.1|1.2  highest version offered (default: OpenSSL's)
  --tls-min 1.0|1.1|1.2|1.3
  --alpn P[,P]       protocols the server selects from (none: no ALPN)
  --client-ca FILE   require a client certificate signed by FILE
  --sni FILE         append the SNI each client sent ("-" for none)
  --version-file F   append the version each handshake negotiated
  --ciphers STR      OpenSSL cipher string for TLS 1.2 (default
                     "ALL:@SECLEVEL=0"; "eNULL:@SECLEVEL=0" offers only
                     ciphers without encryption)
  --host ADDR        listen on ADDR (default 127.0.0.1; ::1 for IPv6)
  --forward PORT     no TLS here: record the raw bytes and relay them to
                     a TLS server on 127.0.0.1:PORT (openssl s_server)

Old versions, RSA-1024 and SHA-1 certificates need OpenSSL's security
level 0: tlsshim must refuse them on its own, not because the test server
could not offer them."""
import argparse
import os
import socket
import ssl
import sys
import threading
import time

import serverloop

p = argparse.ArgumentParser()
p.add_argument("--cert")
p.add_argument("--key")
p.add_argument("--forward", type=int)
p.add_argument("--raw", required=True)
p.add_argument("--plain", required=True)
p.add_argument("--port-file", required=True)
p.add_argument("--tls-max")
p.add_argument("--tls-min")
p.add_argument("--alpn")
p.add_argument("--client-ca")
p.add_argument("--sni")
p.add_argument("--version-file")
p.add_argument("--ciphers", default="ALL:@SECLEVEL=0")
p.add_argument("--host", default="127.0.0.1")
p.add_argument("--max-seconds", type=float, default=120)
a = p.parse_args()

V = {"1.0": ssl.TLSVersion.TLSv1, "1.1": ssl.TLSVersion.TLSv1_1,
     "1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.set_ciphers(a.ciphers)
if a.tls_min:
    ctx.minimum_version = V[a.tls_min]
if a.tls_max:
    ctx.maximum_version = V[a.tls_max]
if not a.forward:
    ctx.load_cert_chain(a.cert, a.key)
if a.alpn:
    ctx.set_alpn_protocols(a.alpn.split(","))
if a.client_ca:
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(a.client_ca)
lock = threading.Lock()
if a.sni:
    def on_sni(sslobj, name, c):
        append(a.sni, ((name or "-") + "\n").encode())
    ctx.sni_callback = on_sni


def append(path, data):
    with lock, open(path, "ab") as f:
        f.write(data)


def pump(src, dst, record):
    try:
        while True:
            d = src.recv(65536)
            if not d:
                break
            if record:
                append(a.raw, d)
            dst.sendall(d)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def relay(c):
    b = socket.create_connection(("127.0.0.1", a.forward), timeout=20)
    b.settimeout(None)
    t1 = threading.Thread(target=pump, args=(c, b, True), daemon=True)
    t1.start()
    pump(b, c, False)
    t1.join(5)
    b.close()
    c.close()


def handle(c):
    if a.forward:
        return relay(c)
    near, far = socket.socketpair()
    t1 = threading.Thread(target=pump, args=(c, near, True), daemon=True)
    t2 = threading.Thread(target=pump, args=(near, c, False), daemon=True)
    t1.start()
    t2.start()
    try:
        s = ctx.wrap_socket(far, server_side=True)
        if a.version_file:
            append(a.version_file, (s.version() + "\n").encode())
        while True:
            d = s.recv(65536)
            if not d:
                break
            append(a.plain, d)
            s.sendall(d)
        s.close()
    except (OSError, ssl.SSLError, ValueError) as e:
        print("verify-server: %s" % e, file=sys.stderr, flush=True)
    finally:
        far.close()
        t2.join(5)
        c.close()
        t1.join(1)


s = serverloop.listen(a.host, 64)
open(a.raw, "ab").close()
open(a.plain, "ab").close()
serverloop.publish_port(s, a.port_file)
serverloop.serve(s, handle, a.max_seconds)
