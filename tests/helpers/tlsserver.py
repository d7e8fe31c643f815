#!/usr/bin/env python3
"""A loopback test server: TLS (default) or plain, several modes.

  echo        echo everything until EOF
  http        answer one HTTP/1.x request with a fixed body, then close
  hello       HTTP/1.1, keep-alive: every request gets "hello over tls"
  sha256      read 'LEN\\n' then LEN bytes; answer the hex sha256
  record      append everything received (decrypted) to --record
  raw-record  plain TCP: write the first bytes a client sends to --record
  silent      accept and never answer (no TLS, so a handshake hangs)

The chosen port is written atomically to --port-file once listening. The
server exits by itself after --max-seconds."""
import argparse
import hashlib
import http.server
import os
import socket
import ssl
import sys
import threading
import time

import serverloop

p = argparse.ArgumentParser()
p.add_argument("--mode", required=True,
               choices="echo http hello sha256 record raw-record silent"
               .split())
p.add_argument("--cert")
p.add_argument("--key")
tls = p.add_mutually_exclusive_group()
tls.add_argument("--tls", dest="plain", action="store_false",
                 default=False, help="TLS (the default)")
tls.add_argument("--plain", action="store_true")
p.add_argument("--host", default="127.0.0.1")
p.add_argument("--port-file", required=True)
p.add_argument("--record")
p.add_argument("--max-seconds", type=float, default=120)
a = p.parse_args()

ctx = None
# raw-record and silent never handshake: no certificate needed.
if not a.plain and a.mode not in ("raw-record", "silent"):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
lock = threading.Lock()


class Hello(http.server.BaseHTTPRequestHandler):
    """Every request on the connection gets "hello over tls\n"."""
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b"hello over tls\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def recv_exact(c, n):
    buf = bytearray()
    while len(buf) < n:
        d = c.recv(min(1 << 20, n - len(buf)))
        if not d:
            break
        buf += d
    return bytes(buf)


def serve(c):
    if a.mode == "silent":
        time.sleep(a.max_seconds)
        return
    if a.mode == "raw-record":
        c.settimeout(5)
        try:
            data = c.recv(4096)
        except OSError:
            data = b""
        with lock, open(a.record, "ab") as f:
            f.write(data)
        return
    if ctx:
        c = ctx.wrap_socket(c, server_side=True)
    if a.mode == "echo":
        while True:
            d = c.recv(1 << 16)
            if not d:
                break
            c.sendall(d)
    elif a.mode == "hello":
        Hello(c, c.getpeername(), None)
    elif a.mode == "http":
        req = b""
        while b"\r\n\r\n" not in req:
            d = c.recv(4096)
            if not d:
                return
            req += d
        path = req.split(b" ")[1] if b" " in req else b"?"
        body = b"hello from the tls server, path " + path + b"\n"
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                  b"Connection: close\r\n\r\n" % len(body) + body)
    elif a.mode == "sha256":
        line = b""
        while not line.endswith(b"\n"):
            d = c.recv(1)
            if not d:
                return
            line += d
        data = recv_exact(c, int(line))
        c.sendall(hashlib.sha256(data).hexdigest().encode() + b"\n")
    elif a.mode == "record":
        while True:
            d = c.recv(1 << 16)
            if not d:
                break
            with lock, open(a.record, "ab") as f:
                f.write(d)
    try:
        c.unwrap() if ctx else None
    except (OSError, ValueError):
        pass
    c.close()


def handle(c):
    try:
        serve(c)
    except (OSError, ssl.SSLError, ValueError) as e:
        print("tlsserver: %s" % e, file=sys.stderr, flush=True)
    finally:
        c.close()


s = serverloop.listen(a.host)
serverloop.publish_port(s, a.port_file)
serverloop.serve(s, handle, a.max_seconds)
