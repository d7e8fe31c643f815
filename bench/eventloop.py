#!/usr/bin/env python3
"""Issue 4's measure: time to establish N concurrent connections in one
asyncio event loop, each then echoing one byte.

  eventloop.py plain N PORT          plain sockets (run under tlsshim, or
                                      against a plaintext server)
  eventloop.py ssl N PORT CAFILE     the same loop with Python's ssl
                                      (OpenSSL), verifying localhost

Prints "n=... secs=... cps=..."."""
import asyncio
import ssl
import sys
import time


async def one(port, ctx):
    r, w = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx,
        server_hostname="localhost" if ctx else None)
    w.write(b"x")
    await w.drain()
    assert await r.readexactly(1) == b"x"
    return w


async def main():
    mode, n, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    ctx = None
    if mode == "ssl":
        ctx = ssl.create_default_context(cafile=sys.argv[4])
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    t0 = time.perf_counter()
    ws = await asyncio.gather(*(one(port, ctx) for _ in range(n)))
    t = time.perf_counter() - t0
    for w in ws:
        w.close()
    print("n=%d secs=%.6f cps=%.2f" % (n, t, n / t))


asyncio.run(main())
