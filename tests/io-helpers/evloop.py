#!/usr/bin/env python3
"""Issue 4: python asyncio opens N connections at once (asyncio streams,
plain TCP: tlsshim upgrades them) to a server that delays each handshake,
while a ticker task runs in the same loop; counts the ticks that ran
while connections were being established (a blocking connect() would
stall the loop: 0) and checks every connection's echo.
   evloop.py PORT N BYTES MIN_TICKS   (ticker: every 5 ms)"""
import asyncio, os, sys

async def main(port, n, nbytes, min_ticks):
    payload = os.urandom(nbytes)
    state = {'ticks': 0, 'pending': n, 'during': -1}

    async def ticker():
        while True:
            await asyncio.sleep(0.005)
            state['ticks'] += 1

    async def one(i):
        r, w = await asyncio.open_connection('127.0.0.1', port)
        state['pending'] -= 1
        if state['pending'] == 0:
            state['during'] = state['ticks']
        w.write(payload)
        await w.drain()
        got = await r.readexactly(nbytes)
        w.close()
        return got == payload

    t = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    res = await asyncio.wait_for(
        asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True), 60)
    t.cancel()
    ok = sum(1 for x in res if x is True)
    errs = [repr(x) for x in res if x is not True][:3]
    print('connections %d, echoed %d, failed %d, ticks while connecting %d, ticks total %d %s'
          % (n, ok, n - ok, state['during'], state['ticks'], ' '.join(errs)))
    return 0 if ok == n and state['during'] >= min_ticks else 1

sys.exit(asyncio.run(main(*map(int, sys.argv[1:5]))))
