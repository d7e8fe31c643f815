#!/usr/bin/env python3
"""TLS clients (Python's ssl, i.e. OpenSSL) for the server-mode tests.

  tlsclient.py talk PORT [--greeting G] [--send S] [--then-wait FILE]
                       [--until U --reply-out FILE]
      One connection: read the greeting G (if given), send S and read it
      echoed back; with --then-wait, once FILE exists send S again and
      read it back (a connection that lives across a change). With
      --until, S is a request: read until U arrives, keep the reply in
      FILE (for servers that answer rather than echo).
  tlsclient.py bulk PORT FILE
      Send FILE while reading the echo, until as many bytes came back;
      then close.
  tlsclient.py many PORT N --ports-out FILE
      First one plain TCP connection that never sends a byte (a client
      that never says ClientHello), then N TLS connections at once (one
      asyncio loop), each echoing one line. The silent one must still be
      pending when all N are done.

Common options: --host (127.0.0.1), --ca (verify the server with this CA;
always), --name (the name verified, default the host), --cert/--key (a
client certificate), --alpn (protocols offered, comma-separated),
--min-tls/--max-tls (1.2 or 1.3), --keylog FILE (the session's secrets,
NSS format), --timeout (seconds for the whole run).

One result line on stdout, key=value: local= (IP:PORT, [IPv6]:PORT, this
end's getsockname), handshake=, with talk also version=, cipher= and
alpn= (- for none), app= (application bytes received), and result=ok or
what went wrong. Exit 0 only for result=ok."""
import argparse
import asyncio
import hashlib
import os
import select
import socket
import ssl
import sys
import time


def addr(sa):
    return ("[%s]:%d" if ":" in sa[0] else "%s:%d") % (sa[0], sa[1])


def context(a):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(a.ca)
    if a.cert:
        ctx.load_cert_chain(a.cert, a.key)
    if a.alpn:
        ctx.set_alpn_protocols(a.alpn.split(","))
    versions = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
    if a.min_tls:
        ctx.minimum_version = versions[a.min_tls]
    if a.max_tls:
        ctx.maximum_version = versions[a.max_tls]
    if a.keylog:
        ctx.keylog_filename = a.keylog
    return ctx


def close(s):
    """close_notify first, as a well-behaved client ends: the server then
    reads a clean end of stream whatever it makes of a bare FIN."""
    try:
        s.settimeout(5)
        s.unwrap()
    except (ssl.SSLError, OSError, ValueError):
        pass
    s.close()


def why(e):
    s = "%s:%s" % (type(e).__name__, e)
    return s.replace(" ", "_")[:160]


class Talk:
    def __init__(self, a):
        self.a = a
        self.app = 0
        self.out = {}

    def read_exactly(self, s, n):
        got = b""
        while len(got) < n:
            d = s.recv(n - len(got))
            if not d:
                break
            self.app += len(d)
            got += d
        return got

    def exchange(self, s, text):
        s.sendall(text)
        got = self.read_exactly(s, len(text))
        if got != text:
            raise RuntimeError("echo:%r" % got[:40])

    def run(self):
        a = self.a
        raw = socket.create_connection((a.host, a.port), timeout=a.timeout)
        self.out["local"] = addr(raw.getsockname())
        try:
            s = context(a).wrap_socket(raw, server_hostname=a.name or a.host)
        except (ssl.SSLError, OSError) as e:
            self.out["handshake"] = "fail:" + why(e)
            raise
        self.out["handshake"] = "ok"
        self.out["version"] = s.version()
        self.out["cipher"] = s.cipher()[0]
        self.out["alpn"] = s.selected_alpn_protocol() or "-"
        if a.greeting is not None:
            g = a.greeting.encode()
            got = self.read_exactly(s, len(g))
            if got != g:
                raise RuntimeError("greeting:%r" % got[:40])
        if a.until is not None:
            s.sendall(a.send.encode())
            got = b""
            while a.until.encode() not in got:
                d = s.recv(1 << 16)
                if not d:
                    break
                self.app += len(d)
                got += d
            with open(a.reply_out, "wb") as f:
                f.write(got)
            if a.until.encode() not in got:
                raise RuntimeError("reply:%r" % got[:40])
        else:
            self.exchange(s, a.send.encode())
        if a.then_wait:
            print("waiting local=%s" % self.out["local"], flush=True)
            end = time.monotonic() + a.timeout
            while not os.path.exists(a.then_wait):
                if time.monotonic() > end:
                    raise RuntimeError("no_%s" % a.then_wait)
                time.sleep(0.05)
            self.exchange(s, (a.send + "-again").encode())
        close(s)

    def main(self):
        try:
            self.run()
            self.out["result"] = "ok"
        except (ssl.SSLError, OSError, RuntimeError) as e:
            self.out["result"] = "error:" + why(e)
        self.out["app"] = self.app
        print(" ".join("%s=%s" % kv for kv in self.out.items()), flush=True)
        return self.out["result"] == "ok"


def bulk(a):
    """Send and receive at once on one non-blocking SSL socket (OpenSSL
    allows one thread per SSL object, so no second thread)."""
    data = open(a.file, "rb").read()
    raw = socket.create_connection((a.host, a.port), timeout=a.timeout)
    local = addr(raw.getsockname())
    s = context(a).wrap_socket(raw, server_hostname=a.name or a.host)
    s.setblocking(False)
    sent, h, got = 0, hashlib.sha256(), 0
    end = time.monotonic() + a.timeout
    while got < len(data):
        if time.monotonic() > end:
            break
        r, w, _ = select.select([s], [s] if sent < len(data) else [], [], 1)
        if w:
            try:
                sent += s.send(data[sent:sent + (1 << 16)])
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                pass
        while True:
            try:
                d = s.recv(1 << 16)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            if not d:
                end = 0
                break
            got += len(d)
            h.update(d)
    close(s)
    ok = got == len(data) and sent == len(data)
    print("local=%s sent=%d app=%d sha256=%s result=%s" % (
        local, sent, got, h.hexdigest(), "ok" if ok else "short"),
        flush=True)
    return ok


async def many(a):
    ctx = context(a)
    silent = socket.create_connection((a.host, a.port), timeout=a.timeout)

    async def one(i):
        r, w = await asyncio.open_connection(
            a.host, a.port, ssl=ctx, server_hostname=a.name or a.host)
        local = addr(w.get_extra_info("sockname"))
        line = b"hello-%d\n" % i
        w.write(line)
        await w.drain()
        got = await r.readexactly(len(line))
        w.close()
        try:
            await asyncio.wait_for(w.wait_closed(), 5)
        except (OSError, ssl.SSLError, asyncio.TimeoutError):
            pass
        return local if got == line else None

    res = await asyncio.wait_for(asyncio.gather(
        *(one(i) for i in range(a.n)), return_exceptions=True), a.timeout)
    ok = [x for x in res if isinstance(x, str)]
    bad = [x for x in res if not isinstance(x, str)]
    # Still pending: nothing to read, no EOF, no error.
    silent.setblocking(False)
    try:
        state = "data" if silent.recv(1) else "closed"
    except BlockingIOError:
        state = "pending"
    except OSError as e:
        state = "error:" + why(e)
    with open(a.ports_out, "w") as f:
        f.write("".join(p + "\n" for p in ok))
    print("local=%s ok=%d failed=%d silent=%s%s result=%s" % (
        addr(silent.getsockname()), len(ok), len(bad), state,
        " first_failure=" + why(bad[0]) if bad else "",
        "ok" if len(ok) == a.n and state == "pending" else "fail"),
        flush=True)
    silent.close()
    return len(ok) == a.n and state == "pending"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["talk", "bulk", "many"])
    p.add_argument("port", type=int)
    p.add_argument("arg", nargs="?", help="bulk: FILE; many: N")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--ca", required=True)
    p.add_argument("--name")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--greeting")
    p.add_argument("--send", default="ping-from-client\n")
    p.add_argument("--then-wait")
    p.add_argument("--until")
    p.add_argument("--reply-out", default=os.devnull)
    p.add_argument("--ports-out")
    p.add_argument("--alpn")
    p.add_argument("--min-tls", choices=["1.2", "1.3"])
    p.add_argument("--max-tls", choices=["1.2", "1.3"])
    p.add_argument("--keylog")
    p.add_argument("--timeout", type=float, default=20)
    a = p.parse_intermixed_args()  # N or FILE may follow the options
    if a.mode == "talk":
        return Talk(a).main()
    if a.mode == "bulk":
        a.file = a.arg
        return bulk(a)
    a.n = int(a.arg)
    return asyncio.run(many(a))


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
