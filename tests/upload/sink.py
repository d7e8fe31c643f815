#!/usr/bin/env python3
"""A sink for the upload tests (tests/80-close-upload.bats): reads each
connection to its end and appends one line per connection to --results:

  BYTES SHA256 END

END: close_notify, eof (a FIN; for TLS: without close_notify), reset
(ECONNRESET) or error:<reason>.

  --mode tls13   Python's ssl (OpenSSL), TLS 1.3 only, two tickets
  --mode tls12   TLS 1.2 only
  --mode plain   plain TCP (the control)
  --stdin        no socket: hash standard input (behind socat's
                 OPENSSL-LISTEN), END is eof
  --greet N      send N bytes (b"g") first, which the client may not read

The port goes to --port-file once listening; exits after --max-seconds."""
import argparse
import hashlib
import os
import signal
import ssl
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "helpers"))
import serverloop  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--mode", choices=["tls13", "tls12", "plain"], default="tls13")
p.add_argument("--cert")
p.add_argument("--key")
p.add_argument("-p", "--port-file")
p.add_argument("-r", "--results", required=True)
p.add_argument("--max-seconds", type=float, default=300)
p.add_argument("--stdin", action="store_true")
p.add_argument("--greet", type=int, default=0,
               help="send this many bytes first (the client may not read)")
a = p.parse_args()


def report(n, h, end):
    line = "%d %s %s\n" % (n, h.hexdigest(), end)
    fd = os.open(a.results, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(fd, line.encode())
    os.close(fd)


def drain(read):
    h, n, end = hashlib.sha256(), 0, "close_notify"
    try:
        while True:
            d = read(1 << 20)
            if not d:
                break
            h.update(d)
            n += len(d)
    except ssl.SSLEOFError:
        end = "eof"
    except ConnectionResetError:
        end = "reset"
    except (OSError, ssl.SSLError) as e:
        end = "error:%s" % type(e).__name__
    return n, h, end


if a.stdin:
    # socat ends its child with SIGTERM when its TLS side ends: the bytes
    # are in the pipe all the same.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    n, h, end = drain(sys.stdin.buffer.raw.read)
    report(n, h, "eof" if end == "close_notify" else end)
    sys.exit(0)

ctx = None
if a.mode != "plain":
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    v = ssl.TLSVersion.TLSv1_3 if a.mode == "tls13" else ssl.TLSVersion.TLSv1_2
    ctx.minimum_version = ctx.maximum_version = v


def serve(c):
    try:
        if ctx:
            c = ctx.wrap_socket(c, server_side=True,
                                suppress_ragged_eofs=False)
    except (OSError, ssl.SSLError) as e:
        report(0, hashlib.sha256(), "error:handshake:%s" % type(e).__name__)
        c.close()
        return
    if a.greet:
        c.sendall(b"g" * a.greet)
    n, h, end = drain(c.recv)
    if end == "close_notify" and not ctx:
        end = "eof"
    report(n, h, end)
    c.close()


ls = serverloop.listen("127.0.0.1", 64)
serverloop.publish_port(ls, a.port_file)
serverloop.serve(ls, serve, a.max_seconds)
