#!/usr/bin/env python3
"""Plain-python clients for tests/11-programs.bats; each prints the
sha256 of what it received.
   pyclients.py socket  PORT FILE   send FILE, half-close, read to EOF
   pyclients.py asyncio PORT FILE   the same with asyncio streams
   pyclients.py http    PORT PATH   http.client GET"""
import asyncio, hashlib, socket, sys, threading, http.client

def sock(port, path):
    data = open(path, 'rb').read()
    s = socket.create_connection(('127.0.0.1', port), timeout=60)
    def send():  # the echo comes back meanwhile: read it concurrently
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
    t = threading.Thread(target=send)
    t.start()
    h, n = hashlib.sha256(), 0
    while True:
        b = s.recv(65536)
        if not b:
            break
        h.update(b)
        n += len(b)
    t.join()
    s.close()
    return h.hexdigest()

async def aio(port, path):
    data = open(path, 'rb').read()
    r, w = await asyncio.open_connection('127.0.0.1', port)
    w.write(data)
    await w.drain()
    w.write_eof()
    got = await r.read()
    w.close()
    return hashlib.sha256(got).hexdigest()

def get(port, path):
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=60)
    c.request('GET', path)
    r = c.getresponse()
    body = r.read()
    assert r.status == 200, r.status
    return hashlib.sha256(body).hexdigest()

mode, port, arg = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if mode == 'socket':
    print(sock(port, arg))
elif mode == 'asyncio':
    print(asyncio.run(aio(port, arg)))
else:
    print(get(port, arg))
