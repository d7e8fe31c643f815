#!/usr/bin/env python3
"""Hostile and broken TLS servers on a free loopback port.

  garbage       reads the ClientHello, answers with non-TLS bytes
  silent        accepts and never answers
  close-mid     reads the ClientHello, sends half a ServerHello record, closes
  alert         reads the ClientHello, answers with a fatal handshake_failure
  reset         TLS echo; after --after bytes echoed, resets the connection
                (SO_LINGER 0: an RST, not a FIN)
  no-notify     TLS; sends --after bytes, then closes TCP without close_notify
  oversized     TLS; sends a record whose length exceeds 2^14+256

The port goes to --port-file once listening; exits after --max-seconds."""
import argparse
import os
import socket
import ssl
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "helpers"))
import serverloop  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--mode", required=True, choices=[
    "garbage", "silent", "close-mid", "alert", "reset", "no-notify",
    "oversized"])
p.add_argument("--cert")
p.add_argument("--key")
p.add_argument("--port-file", required=True)
p.add_argument("--after", type=int, default=65536)
p.add_argument("--max-seconds", type=float, default=120)
a = p.parse_args()

ctx = None
if a.cert:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)


def read_hello(c):
    c.settimeout(10)
    try:
        return c.recv(16384)
    except OSError:
        return b""


def rst(c):
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                 struct.pack("ii", 1, 0))
    c.close()


def serve(c):
    m = a.mode
    if m == "silent":
        time.sleep(a.max_seconds)
    elif m == "garbage":
        read_hello(c)
        c.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n" + os.urandom(512))
        time.sleep(2)
    elif m == "close-mid":
        read_hello(c)
        # A handshake record announcing 0x50 bytes, then only 10 of them.
        c.sendall(b"\x16\x03\x03\x00\x50\x02\x00\x00\x4c\x03\x03" +
                  b"\x00" * 5)
        c.close()
    elif m == "alert":
        read_hello(c)
        c.sendall(b"\x15\x03\x03\x00\x02\x02\x28")  # fatal handshake_failure
        time.sleep(1)
    else:
        s = ctx.wrap_socket(c, server_side=True)
        if m == "reset":
            n = 0
            while n < a.after:
                d = s.recv(65536)
                if not d:
                    return
                s.sendall(d)
                n += len(d)
            rst(s)  # c was detached by wrap_socket: the fd is s's
        elif m == "no-notify":
            s.sendall(b"x" * a.after)
            time.sleep(0.2)
            # No unwrap(): the TCP stream just ends.
            c.shutdown(socket.SHUT_RDWR)
            c.close()
        elif m == "oversized":
            s.sendall(b"ok\n")
            time.sleep(0.2)
            # An application-data record of 2^14 + 2048 bytes: over the
            # limit for any TLS version, whatever its content.
            n = (1 << 14) + 2048
            os.write(s.fileno(), b"\x17\x03\x03" + struct.pack(">H", n) +
                     os.urandom(n))
            time.sleep(2)


def handle(c):
    try:
        serve(c)
    except (OSError, ssl.SSLError, ValueError) as e:
        print("hostile: %s" % e, file=sys.stderr, flush=True)
    finally:
        try:
            c.close()
        except OSError:
            pass


s = serverloop.listen("127.0.0.1", 16)
serverloop.publish_port(s, a.port_file)
serverloop.serve(s, handle, a.max_seconds)
