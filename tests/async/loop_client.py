#!/usr/bin/env python3
"""loop_client.py PORT N: one asyncio event loop opens N concurrent
connections (plain, as far as it knows) to 127.0.0.1:PORT, each sends a
line and reads it back, while a timer in the same loop ticks every 5 ms.

Counted, not timed: the ticks that fire before the first connection is
established. The server delays every handshake, so a loop that never
blocks keeps ticking while all N handshakes are pending; a loop whose
connect() waits for the handshake runs all N connects back to back in one
turn and reaches its first tick with every connection already made.
Prints
  conns=N echoed=E ticks_before_first_connect=T max_opening_at_tick=M
and exits 0 only when every connection moved its payload."""
import asyncio
import sys

port, n = int(sys.argv[1]), int(sys.argv[2])
opening = 0
ticks_opening = 0
max_opening = 0
connected = 0
ticks_before = 0


async def one(i):
    global opening, connected
    opening += 1
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
    finally:
        opening -= 1
    connected += 1
    msg = f"payload {i}\n".encode()
    w.write(msg)
    await w.drain()
    got = await r.readexactly(len(msg))
    w.close()
    return got == msg


async def ticker(stop):
    global ticks_opening, max_opening, ticks_before
    while not stop.is_set():
        await asyncio.sleep(0.005)
        if not connected:
            ticks_before += 1
        if opening:
            ticks_opening += 1
            max_opening = max(max_opening, opening)


async def main():
    stop = asyncio.Event()
    t = asyncio.ensure_future(ticker(stop))
    res = await asyncio.wait_for(
        asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True),
        60)
    stop.set()
    await t
    ok = sum(1 for r in res if r is True)
    errs = [r for r in res if r is not True]
    print(f"conns={n} echoed={ok} ticks_before_first_connect={ticks_before} "
          f"max_opening_at_tick={max_opening}")
    if errs:
        print("first error:", repr(errs[0]), file=sys.stderr)
    return 0 if ok == n else 1


sys.exit(asyncio.run(main()))
