#!/usr/bin/env python3
"""TLS (or plain TCP) test server for tests/io and the programs tests.

Modes:
  echo    echo every byte back; when the client half-closes (EOF or
          close_notify) answer "EOF <n>\n" (n = bytes received), then
          close_notify and close.  The server can still send after the
          client's SHUT_WR: that is the half-close test.
  silent  accept TCP and never say a word (handshake timeout tests).
  http    HTTP/1.1 GET of files under --root (curl, wget, http.client).
Options:
  --plain          no TLS (validates the C clients against the kernel)
  --delay A-B      sleep a random A..B ms after accept, before the TLS
                   handshake (event-loop tests); "A" alone is fixed
  --port-file F    write the bound port there once listening
Binds 127.0.0.1 (or --host) port 0.  One thread per connection.
"""
import argparse, os, random, socket, ssl, sys, threading, time

def parse():
    p = argparse.ArgumentParser()
    p.add_argument('--mode', default='echo', choices=['echo', 'silent', 'http'])
    p.add_argument('--plain', action='store_true')
    p.add_argument('--cert')
    p.add_argument('--key')
    p.add_argument('--delay', default='0')
    p.add_argument('--host', default='127.0.0.1')
    p.add_argument('--root', default='.')
    p.add_argument('--port-file', required=True)
    p.add_argument('--max-seconds', type=float, default=600)
    return p.parse_args()

def echo(conn):
    n = 0
    while True:
        try:
            b = conn.recv(65536)
        except (ConnectionError, ssl.SSLError, OSError):
            return
        if not b:
            break
        n += len(b)
        try:
            conn.sendall(b)
        except (ConnectionError, ssl.SSLError, OSError):
            return
    try:
        conn.sendall(b'EOF %d\n' % n)
        if isinstance(conn, ssl.SSLSocket):
            conn.unwrap()
        else:
            conn.shutdown(socket.SHUT_WR)
    except (ConnectionError, ssl.SSLError, OSError, ValueError):
        pass

def serve(raw, args, ctx, delay):
    try:
        # lock-step echo tests must not wait for delayed ACKs (Nagle)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if args.mode == 'silent':
            # hold the socket open until the client goes away
            while raw.recv(65536):
                pass
            return
        lo, hi = delay
        if hi > 0:
            time.sleep(random.uniform(lo, hi) / 1000.0)
        conn = raw
        if ctx is not None:
            raw.settimeout(30)
            conn = ctx.wrap_socket(raw, server_side=True)
            conn.settimeout(None)
        echo(conn)
    except (ConnectionError, ssl.SSLError, OSError, socket.timeout):
        pass
    finally:
        try:
            raw.close()
        except OSError:
            pass

def http_main(args, ctx):
    import functools, http.server
    class H(http.server.SimpleHTTPRequestHandler):
        protocol_version = 'HTTP/1.1'
        def log_message(self, *a):
            pass
    class S(http.server.ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 512
        def get_request(self):
            raw, addr = self.socket.accept()
            if ctx is None:
                return raw, addr
            raw.settimeout(30)
            return ctx.wrap_socket(raw, server_side=True), addr
    fam = socket.AF_INET6 if ':' in args.host else socket.AF_INET
    S.address_family = fam
    srv = S((args.host, 0), functools.partial(H, directory=args.root))
    tmp = args.port_file + '.tmp'
    with open(tmp, 'w') as f:
        f.write('%d\n' % srv.server_address[1])
    os.rename(tmp, args.port_file)
    srv.serve_forever()

def main():
    args = parse()
    # Bounded like every test server: it ends by itself.
    t = threading.Timer(args.max_seconds, os._exit, args=(0,))
    t.daemon = True
    t.start()
    d = [int(x) for x in args.delay.split('-')]
    delay = (d[0], d[-1])
    ctx = None
    if not args.plain and args.mode != 'silent':
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
    if args.mode == 'http':
        return http_main(args, ctx)
    fam = socket.AF_INET6 if ':' in args.host else socket.AF_INET
    ls = socket.socket(fam, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((args.host, 0))
    ls.listen(512)
    tmp = args.port_file + '.tmp'
    with open(tmp, 'w') as f:
        f.write('%d\n' % ls.getsockname()[1])
    os.rename(tmp, args.port_file)
    while True:
        raw, _ = ls.accept()
        threading.Thread(target=serve, args=(raw, args, ctx, delay),
                         daemon=True).start()

if __name__ == '__main__':
    main()
