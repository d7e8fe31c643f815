#!/usr/bin/env python3
"""The libc paths an unmodified server uses on an accepted connection,
for the server-mode tests (tests/97-server-io.bats).

  serverio.py serve PORT RECORD [--shut-first PORT2]
      A plaintext server (run under tlsshim with an accept rule) on
      127.0.0.1:PORT, a thread per connection. On PORT2, before any other
      call on the connection, it shuts its writing down (SHUT_WR), then
      reads a line and records "shutfirst got=LINE". The client's first line
      names a case; the server acts it out with ordinary socket and os
      calls (dup, sendfile, shutdown, fork, setsockopt/getsockopt,
      non-blocking I/O with select) and appends what it saw to RECORD,
      one line per case: "CASE key=value ...".
  serverio.py check CASE PORT --ca CA [--file F]
      The TLS client (Python's ssl, verifying the server): sends CASE and
      checks the reply. One line on stdout, key=value; exit 0 only for
      result=ok.

Cases:
  dup       the reply goes through a dup of the fd, the dup is closed,
            then more through the original
  sendfile  the server sends file F with os.sendfile, then END
  shutdown  "before" END, shutdown(SHUT_WR); the server still reads the
            client's late line, which the record shows; the client sees
            a clean end of stream
  fork      a forked child answers on the inherited fd and reads the
            client's next line; the parent closes its copy at once
  sockopt   TCP_NODELAY set and read back, SO_TYPE, SO_ERROR, getpeername
            and getsockname, in the reply
  nonblock  O_NONBLOCK; the request's second line (sent with the first:
            its rest is already decrypted when select() is called) read
            through select(), and 4 MiB written back through select() and
            partial sends"""
import argparse
import hashlib
import os
import select
import socket
import ssl
import sys
import threading
import time

LINE_MAX = 4096
BIG = 4 << 20


def read_line(s):
    got = b""
    while not got.endswith(b"\n") and len(got) < LINE_MAX:
        d = s.recv(1)
        if not d:
            break
        got += d
    return got


# -- the server --------------------------------------------------------

class Server:
    def __init__(self, record):
        self.record = record
        self.lock = threading.Lock()

    def note(self, text):
        with self.lock, open(self.record, "a") as f:
            f.write(text + "\n")

    def case_dup(self, c, arg):
        d = os.dup(c.fileno())
        os.write(d, b"via-dup\n")
        os.close(d)
        c.sendall(b"via-original\nEND\n")
        self.note("dup ok")

    def case_sendfile(self, c, path):
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            off = 0
            while off < size:
                off += os.sendfile(c.fileno(), f.fileno(), off, size - off)
        c.sendall(b"END\n")
        self.note("sendfile sent=%d" % size)

    def case_shutdown(self, c, arg):
        c.sendall(b"before\nEND\n")
        c.shutdown(socket.SHUT_WR)
        late = read_line(c).strip().decode(errors="replace")
        self.note("shutdown late=%s" % (late or "-"))

    def case_fork(self, c, arg):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                c.sendall(b"from-child %d\n" % os.getpid())
                got = read_line(c).strip().decode(errors="replace")
                c.sendall(b"child-read %s\nEND\n" % got.encode())
                self.note("fork child-read=%s" % got)
                code = 0
            finally:
                os._exit(code)
        c.close()  # the parent's copy: the child owns the connection
        os.waitpid(pid, 0)

    def case_sockopt(self, c, arg):
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        nodelay = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        typ = c.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)
        err = c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        peer = "%s:%d" % c.getpeername()
        local = "%s:%d" % c.getsockname()
        line = "nodelay=%d type=%d error=%d peer=%s local=%s" % (
            nodelay, typ, err, peer, local)
        c.sendall(line.encode() + b"\nEND\n")
        self.note("sockopt " + line)

    def case_nonblock(self, c, arg):
        # A small send buffer and a client that waits before reading:
        # sends must come back partial, as from the kernel.
        c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        c.setblocking(False)
        got, end = b"", time.monotonic() + 20
        while not got.endswith(b"\n") and time.monotonic() < end:
            r, _, _ = select.select([c], [], [], 1)
            if r:
                try:
                    d = c.recv(LINE_MAX)
                except BlockingIOError:
                    continue
                if not d:
                    break
                got += d
        data = hashlib.sha256(got).digest() * (BIG // 32)
        sent, partial, again = 0, 0, 0
        while sent < len(data) and time.monotonic() < end:
            _, w, _ = select.select([], [c], [], 1)
            if not w:
                continue
            try:
                n = c.send(data[sent:sent + (1 << 20)])
            except BlockingIOError:
                again += 1
                continue
            partial += n < min(1 << 20, len(data) - sent)
            sent += n
        c.setblocking(True)
        c.sendall(b"END\n")
        self.note("nonblock read=%d sent=%d partial=%d eagain=%d" % (
            len(got), sent, partial, again))

    def shut_first(self, c):
        try:
            c.shutdown(socket.SHUT_WR)
            got = read_line(c).strip().decode(errors="replace")
            self.note("shutfirst got=%s" % (got or "-"))
        except OSError as e:
            self.note("shutfirst error=%s" % str(e).replace(" ", "_"))
        finally:
            c.close()

    def serve_one(self, c):
        try:
            words = read_line(c).decode(errors="replace").split()
            if words:
                getattr(self, "case_" + words[0])(
                    c, words[1] if len(words) > 1 else None)
        except (OSError, AttributeError) as e:
            self.note("error %s" % str(e).replace(" ", "_"))
        finally:
            try:
                c.close()
            except OSError:
                pass

    def listen_on(self, port, handler):
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", port))
        ls.listen(64)
        while True:
            c, _ = ls.accept()
            threading.Thread(target=handler, args=(c,), daemon=True).start()

    def run(self, port, shut_port):
        if shut_port:
            threading.Thread(target=self.listen_on,
                             args=(shut_port, self.shut_first),
                             daemon=True).start()
        self.listen_on(port, self.serve_one)


# -- the client --------------------------------------------------------

def read_all(s, until=b"END\n"):
    got = b""
    while not got.endswith(until):
        d = s.recv(1 << 16)
        if not d:
            break
        got += d
    return got


def check(a):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(a.ca)
    raw = socket.create_connection(("127.0.0.1", a.port), timeout=20)
    out = {"local": "%s:%d" % raw.getsockname()}
    s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    req = a.case + (" " + a.file if a.file else "")
    second = b""
    if a.case == "nonblock":
        second = b"n" * 3000 + b"\n"
    s.sendall(req.encode() + b"\n" + second)
    ok = False
    if a.case == "dup":
        got = read_all(s)
        ok = got == b"via-dup\nvia-original\nEND\n"
        out["got"] = repr(got[:60]).replace(" ", "_")
    elif a.case == "sendfile":
        got = read_all(s)
        body = got[:-4]
        want = open(a.file, "rb").read()
        out["bytes"] = len(body)
        ok = got.endswith(b"END\n") and body == want
    elif a.case == "shutdown":
        got = read_all(s)
        s.sendall(b"late-line\n")
        rest = s.recv(100)  # the server's SHUT_WR: a clean end of stream
        out["eof"] = "clean" if rest == b"" else repr(rest)
        ok = got == b"before\nEND\n" and rest == b""
    elif a.case == "fork":
        first = read_line(s)
        s.sendall(b"hello-child\n")
        got = first + read_all(s)
        out["got"] = repr(got[:80]).replace(" ", "_")
        ok = got.startswith(b"from-child ") and \
            got.endswith(b"child-read hello-child\nEND\n")
    elif a.case == "shutfirst":
        # The request line went first; the server shut its side at once.
        rest = s.recv(100)
        out["eof"] = "clean" if rest == b"" else repr(rest)
        ok = rest == b""
    elif a.case == "sockopt":
        got = read_all(s).decode()
        out["reply"] = got.splitlines()[0] if got else "-"
        f = dict(w.split("=", 1) for w in out["reply"].split()
                 if "=" in w)
        out["reply"] = out["reply"].replace(" ", ",")
        ok = f.get("nodelay", "0") != "0" and f.get("type") == "1" and \
            f.get("error") == "0" and f.get("peer") == out["local"]
    elif a.case == "nonblock":
        time.sleep(0.5)
        got = read_all(s)
        body = got[:-4]
        want = hashlib.sha256(second).digest() * (BIG // 32)
        out["bytes"] = len(body)
        ok = body == want
    s.close()
    out["result"] = "ok" if ok else "fail"
    print(" ".join("%s=%s" % kv for kv in out.items()), flush=True)
    return ok


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    sv = sub.add_parser("serve")
    sv.add_argument("port", type=int)
    sv.add_argument("record")
    sv.add_argument("--shut-first", type=int)
    ck = sub.add_parser("check")
    ck.add_argument("case", choices=["dup", "sendfile", "shutdown", "fork",
                                     "sockopt", "nonblock", "shutfirst"])
    ck.add_argument("port", type=int)
    ck.add_argument("--ca", required=True)
    ck.add_argument("--file")
    a = p.parse_args()
    if a.cmd == "serve":
        Server(a.record).run(a.port, a.shut_first)
        return True
    try:
        return check(a)
    except (OSError, ssl.SSLError) as e:
        print("result=error:%s" % str(e).replace(" ", "_"), flush=True)
        return False


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
