#!/usr/bin/env python3
"""A loopback TLS echo server that waits before each handshake.

Every accepted connection sleeps --delay-ms before the server starts TLS
(so a client that handshakes inside connect() would freeze its event loop
for that long, per connection), then echoes until EOF. --mode silent
accepts and never answers. The port is written atomically to --port-file;
the server exits by itself after --max-seconds."""
import argparse
import asyncio
import os
import socket
import ssl

p = argparse.ArgumentParser()
p.add_argument("--cert", required=True)
p.add_argument("--key", required=True)
p.add_argument("--port-file", required=True)
p.add_argument("--delay-ms", type=int, default=100)
p.add_argument("--mode", choices=["echo", "http", "silent"],
               default="echo")
p.add_argument("--barrier", type=int, default=1,
               help="handshakes wait until this many connections of their "
                    "group have been accepted (then --delay-ms)")
p.add_argument("--max-seconds", type=float, default=120)
a = p.parse_args()

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(a.cert, a.key)


groups = {}


def gate(i):
    g = i // a.barrier
    if g not in groups:
        groups[g] = asyncio.Event()
    if i % a.barrier == a.barrier - 1:
        groups[g].set()
    return groups[g]


async def serve(conn, ev):
    # The accepted socket is not read during the delay: the ClientHello
    # waits in the kernel until TLS starts.
    loop = asyncio.get_running_loop()
    writer = None
    try:
        if a.mode == "silent":
            await asyncio.sleep(a.max_seconds)
            return
        await ev.wait()
        await asyncio.sleep(a.delay_ms / 1000)
        reader = asyncio.StreamReader()
        proto = asyncio.StreamReaderProtocol(reader)
        transport, _ = await loop.connect_accepted_socket(
            lambda: proto, conn, ssl=ctx)
        writer = asyncio.StreamWriter(transport, proto, reader, loop)
        if a.mode == "http":
            req = await reader.readuntil(b"\r\n\r\n")
            path = req.split(b" ")[1].decode()
            body = f"async hello, path {path}\n".encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n" % len(body) + body)
            await writer.drain()
            return
        while True:
            d = await reader.read(65536)
            if not d:
                break
            writer.write(d)
            await writer.drain()
    except (OSError, ssl.SSLError, ConnectionError,
            asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        pass
    finally:
        if writer:
            writer.close()
        else:
            conn.close()


async def main():
    loop = asyncio.get_running_loop()
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1024)
    ls.setblocking(False)
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{ls.getsockname()[1]}\n")
    os.rename(tmp, a.port_file)
    tasks = set()
    accepted = 0
    while True:
        conn, _ = await loop.sock_accept(ls)
        conn.setblocking(False)
        t = asyncio.ensure_future(serve(conn, gate(accepted)))
        accepted += 1
        tasks.add(t)
        t.add_done_callback(tasks.discard)


async def bounded():
    try:
        await asyncio.wait_for(main(), a.max_seconds)
    except asyncio.TimeoutError:
        pass


try:
    asyncio.run(bounded())
except (asyncio.TimeoutError, KeyboardInterrupt):
    pass
