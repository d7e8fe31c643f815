#!/usr/bin/env python3
"""A plain TCP server that does not speak TLS, recording every byte it
receives (appended to --raw).

  --greet TEXT   sent as soon as a client connects (SMTP, MySQL)
  --reply TEXT   sent once the client's first bytes arrive (an HTTP error,
                 PostgreSQL's error to a startup packet it cannot parse)

TEXT takes Python escapes (\\r, \\n, \\x00...). The port goes to
--port-file; exits after --max-seconds."""
import argparse
import codecs
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "helpers"))
import serverloop  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--greet", default="")
p.add_argument("--reply", default="")
p.add_argument("--raw", required=True)
p.add_argument("--port-file", required=True)
p.add_argument("--max-seconds", type=float, default=120)
a = p.parse_args()


def text(s):
    return codecs.decode(s, "unicode_escape").encode("latin-1")


def handle(c):
    try:
        c.settimeout(10)
        if a.greet:
            c.sendall(text(a.greet))
        replied = not a.reply
        while True:
            d = c.recv(65536)
            if not d:
                break
            with open(a.raw, "ab") as f:
                f.write(d)
            if not replied:
                c.sendall(text(a.reply))
                replied = True
    except OSError:
        pass
    finally:
        c.close()


s = serverloop.listen("127.0.0.1", 16)
serverloop.publish_port(s, a.port_file)
serverloop.serve(s, handle, a.max_seconds)
