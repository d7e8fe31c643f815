#!/usr/bin/env python3
"""A plaintext client that keeps what the wire brought it.

  rawclient.py PORT [--host H] [--send TEXT] [--shut] [--out FILE]
               [--idle S] [--hold-until FILE]

Connects, prints "local=IP:PORT" at once (its getsockname), sends TEXT if
given (then shutdown(SHUT_WR) with --shut), then reads until the server
ends the connection or --idle seconds pass without a byte. Every byte received is kept in --out. With
--hold-until it sends nothing more and reads nothing until FILE exists,
then looks without waiting: "pending" if the connection is still open
with nothing to read.

Last line: "received=N end=eof|reset|timeout|pending|data" (or
error-ERRNO; "local=none ... end=connect-ERRNO" when the connect
itself failed). A server that drops a client it refuses ends in eof or
reset; timeout means it never did."""
import argparse
import errno
import os
import socket
import sys
import time

p = argparse.ArgumentParser()
p.add_argument("port", type=int)
p.add_argument("--host", default="127.0.0.1")
p.add_argument("--send")
p.add_argument("--shut", action="store_true")
p.add_argument("--out", default=os.devnull)
p.add_argument("--idle", type=float, default=10)
p.add_argument("--hold-until")
p.add_argument("--max", type=float, default=60)
a = p.parse_args()

try:
    s = socket.create_connection((a.host, a.port), timeout=10)
except OSError as e:
    # A connect that fails (under tlsshim: a refused handshake).
    print("local=none received=0 end=connect-%s"
          % errno.errorcode.get(e.errno, "?"), flush=True)
    sys.exit(0)
sa = s.getsockname()
print(("local=[%s]:%d" if ":" in sa[0] else "local=%s:%d") % sa[:2],
      flush=True)
got = b""
end = "timeout"
try:
    if a.send:
        s.sendall(a.send.encode())
    if a.shut:
        s.shutdown(socket.SHUT_WR)
except OSError as e:
    # Refused before all was sent: what came back is still read.
    end = "send-" + errno.errorcode.get(e.errno, "?")
if a.hold_until:
    deadline = time.monotonic() + a.max
    while not os.path.exists(a.hold_until) and time.monotonic() < deadline:
        time.sleep(0.05)
    s.setblocking(False)
    try:
        got = s.recv(1 << 16)
        end = "data" if got else "eof"
    except BlockingIOError:
        end = "pending"
    except ConnectionResetError:
        end = "reset"
else:
    s.settimeout(a.idle)
    while True:
        try:
            d = s.recv(1 << 16)
        except socket.timeout:
            break
        except ConnectionResetError:
            end = "reset"
            break
        except OSError as e:
            end = "error-" + errno.errorcode.get(e.errno, "?")
            break
        if not d:
            end = "eof"
            break
        got += d
with open(a.out, "wb") as f:
    f.write(got)
print("received=%d end=%s" % (len(got), end), flush=True)
