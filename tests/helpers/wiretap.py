#!/usr/bin/env python3
"""A recording TCP proxy: what a client put on the wire, kept byte for byte.

Listens on --host (a free port, published in --port-file), and for each
connection records every byte the client sent to --record-dir/conn-N.raw
(N counts connections from 1, in accept order). With --upstream-port the
bytes are forwarded to that loopback port and the answers passed back, so a
TLS client gets a real TLS server behind the tap; without it the tap only
listens and records (a TLS client then waits for a ServerHello that never
comes, until its own timeout or --idle seconds pass).

Fail-closed tests judge by these files: a marker the program wrote must
never appear in them. Stops by itself after --max-seconds."""
import argparse
import itertools
import os
import socket
import threading

import serverloop

p = argparse.ArgumentParser()
p.add_argument("--host", default="127.0.0.1")
p.add_argument("--port-file", required=True)
p.add_argument("--record-dir", required=True)
p.add_argument("--upstream-port", type=int)
p.add_argument("--upstream-host", default="127.0.0.1")
p.add_argument("--idle", type=float, default=30)
p.add_argument("--max-seconds", type=float, default=600)
a = p.parse_args()

counter = itertools.count(1)
count_lock = threading.Lock()


def pump(src, dst, record):
    try:
        while True:
            d = src.recv(1 << 16)
            if not d:
                break
            if record:
                record.write(d)
                record.flush()
            if dst:
                dst.sendall(d)
    except OSError:
        pass
    finally:
        for s in (dst,):
            if s:
                try:
                    s.shutdown(socket.SHUT_WR)
                except OSError:
                    pass


def handle(c):
    with count_lock:
        n = next(counter)
    path = os.path.join(a.record_dir, "conn-%d.raw" % n)
    up = None
    c.settimeout(a.idle)
    with open(path, "ab") as record:
        if a.upstream_port:
            try:
                up = socket.create_connection(
                    (a.upstream_host, a.upstream_port), timeout=10)
                up.settimeout(a.idle)
            except OSError:
                c.close()
                return
            back = threading.Thread(target=pump, args=(up, c, None),
                                    daemon=True)
            back.start()
        pump(c, up, record)
        if up:
            back.join(a.idle)
            up.close()
    c.close()


os.makedirs(a.record_dir, exist_ok=True)
s = serverloop.listen(a.host)
serverloop.publish_port(s, a.port_file)
serverloop.serve(s, handle, a.max_seconds)
