#!/usr/bin/env python3
"""async_connect.py MODE PORT N CA: time for one asyncio loop to establish
N concurrent connections to 127.0.0.1:PORT and move one line each.
MODE plain: plain connects (run it under tlsshim: upgraded, verified);
MODE tls: the same loop with Python's own ssl (verified against CA).
Prints the seconds."""
import asyncio
import ssl
import sys
import time

mode, port, n, ca = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ctx = None
if mode == "tls":
    ctx = ssl.create_default_context(cafile=ca)


async def one(i):
    if ctx:
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                             server_hostname="127.0.0.1")
    else:
        r, w = await asyncio.open_connection("127.0.0.1", port)
    msg = b"x%d\n" % i
    w.write(msg)
    await r.readexactly(len(msg))
    w.close()


async def main():
    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    print(f"{time.perf_counter() - t0:.4f}")


asyncio.run(main())
