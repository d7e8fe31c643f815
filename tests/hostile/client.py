#!/usr/bin/env python3
"""client.py HOST PORT MODE: a plain TCP client that says what it saw.

  connect   connect, then close
  pingpong  send 4 KiB blocks and read each echo back, until an error or
            EOF (at most --limit bytes)
  drain     read until EOF or an error

Prints 'client: connect: <ERRNO>', 'client: error: <ERRNO> after N bytes'
or 'client: eof after N bytes'. Exit status: 0 at EOF, 1 on an error."""
import errno
import socket
import sys

host, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
limit = int(sys.argv[4]) if len(sys.argv) > 4 else 64 << 20
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
try:
    s.connect((host, port))
except OSError as e:
    print("client: connect: %s" % errno.errorcode.get(e.errno, e.errno))
    sys.exit(1)
n = 0
try:
    if mode == "connect":
        pass
    elif mode == "pingpong":
        block = b"p" * 4096
        while n < limit:
            s.sendall(block)
            got = 0
            while got < len(block):
                d = s.recv(len(block) - got)
                if not d:
                    print("client: eof after %d bytes" % (n + got))
                    sys.exit(0)
                got += len(d)
            n += got
    elif mode == "drain":
        while True:
            d = s.recv(65536)
            if not d:
                break
            n += len(d)
except OSError as e:
    print("client: error: %s after %d bytes" %
          (errno.errorcode.get(e.errno, e.errno), n))
    sys.exit(1)
print("client: eof after %d bytes" % n)
