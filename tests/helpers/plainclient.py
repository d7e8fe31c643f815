#!/usr/bin/env python3
"""A plaintext-only client: it knows nothing of TLS.

  plainclient.py sha256 HOST PORT FILE   send 'LEN\\n' + FILE, print reply
  plainclient.py send HOST PORT TEXT     send TEXT, print what comes back
"""
import socket
import sys

mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.create_connection((host, port), timeout=20)
if mode == "sha256":
    data = open(sys.argv[4], "rb").read()
    s.sendall(b"%d\n" % len(data))
    s.sendall(data)
elif mode == "send":
    s.sendall(sys.argv[4].encode())
    s.shutdown(socket.SHUT_WR)
out = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    out += d
    if mode == "sha256" and out.endswith(b"\n"):
        break
sys.stdout.write(out.decode(errors="replace"))
