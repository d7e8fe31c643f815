#!/usr/bin/env python3
"""Calls libc's resolver functions directly (ctypes), as a C program would.

  resolve-probe.py probe
      print what getaddrinfo, gethostbyname, gethostbyname2 and their _r
      twins return for local names, including failures: run with and
      without the preload, the output must be identical
  resolve-probe.py learn FUNC PORT TEXT
      resolve "localhost" with FUNC only, then connect to 127.0.0.1:PORT
      by address (no name involved), send TEXT, print the answer
"""
import ctypes
import socket
import sys

# The global scope, as a C program links: the preload comes first.
libc = ctypes.CDLL(None, use_errno=True)


class hostent(ctypes.Structure):
    _fields_ = [("h_name", ctypes.c_char_p),
                ("h_aliases", ctypes.POINTER(ctypes.c_char_p)),
                ("h_addrtype", ctypes.c_int),
                ("h_length", ctypes.c_int),
                ("h_addr_list", ctypes.POINTER(ctypes.c_void_p))]


class addrinfo(ctypes.Structure):
    pass


addrinfo._fields_ = [("ai_flags", ctypes.c_int), ("ai_family", ctypes.c_int),
                     ("ai_socktype", ctypes.c_int),
                     ("ai_protocol", ctypes.c_int),
                     ("ai_addrlen", ctypes.c_uint32),
                     ("ai_addr", ctypes.c_void_p),
                     ("ai_canonname", ctypes.c_char_p),
                     ("ai_next", ctypes.POINTER(addrinfo))]

HP = ctypes.POINTER(hostent)
libc.gethostbyname.restype = HP
libc.gethostbyname2.restype = HP
libc.getaddrinfo.argtypes = [ctypes.c_char_p, ctypes.c_char_p,
                             ctypes.POINTER(addrinfo),
                             ctypes.POINTER(ctypes.POINTER(addrinfo))]
h_errno_loc = libc.__h_errno_location
h_errno_loc.restype = ctypes.POINTER(ctypes.c_int)


def fmt_hostent(h):
    if not h:
        return "NULL h_errno=%d" % h_errno_loc().contents.value
    h = h.contents
    addrs = []
    i = 0
    while h.h_addr_list[i]:
        raw = ctypes.string_at(h.h_addr_list[i], h.h_length)
        addrs.append(socket.inet_ntop(h.h_addrtype, raw))
        i += 1
    return "%s type=%d %s" % (h.h_name.decode(), h.h_addrtype,
                              ",".join(addrs))


def gai(node, service, flags=0, family=0):
    hints = addrinfo()
    hints.ai_flags = flags
    hints.ai_family = family
    hints.ai_socktype = socket.SOCK_STREAM
    res = ctypes.POINTER(addrinfo)()
    rc = libc.getaddrinfo(node and node.encode(),
                          service and service.encode(),
                          ctypes.byref(hints), ctypes.byref(res))
    out = []
    p = res
    while rc == 0 and p:
        a = p.contents
        sa = ctypes.string_at(a.ai_addr, a.ai_addrlen)
        out.append("%d/%d" % (a.ai_family, len(sa)) + sa.hex())
        p = a.ai_next
    if rc == 0:
        libc.freeaddrinfo(res)
    return "rc=%d %s" % (rc, " ".join(out))


def by_r(name, af=None):
    h = hostent()
    buf = ctypes.create_string_buffer(8192)
    result = HP()
    err = ctypes.c_int(0)
    if af is None:
        rc = libc.gethostbyname_r(name.encode(), ctypes.byref(h), buf, 8192,
                                  ctypes.byref(result), ctypes.byref(err))
    else:
        rc = libc.gethostbyname2_r(name.encode(), af, ctypes.byref(h), buf,
                                   8192, ctypes.byref(result),
                                   ctypes.byref(err))
    return "rc=%d err=%d %s" % (rc, err.value,
                                fmt_hostent(result) if result else "NULL")


if sys.argv[1] == "probe":
    for args in [("localhost", "443"), ("LOCALHOST.", "443"),
                 ("127.0.0.1", "80"), ("::1", "80"),
                 ("localhost", "no-such-service-x"),
                 ("not-numeric.example", "80", socket.AI_NUMERICHOST),
                 (None, None), ("localhost", "80", 0, socket.AF_INET6)]:
        print("getaddrinfo", args, gai(*args))
    print("gethostbyname", fmt_hostent(libc.gethostbyname(b"localhost")))
    print("gethostbyname2", fmt_hostent(
        libc.gethostbyname2(b"localhost", socket.AF_INET)))
    print("gethostbyname2 bad af", fmt_hostent(
        libc.gethostbyname2(b"localhost", 12345)))
    print("gethostbyname_r", by_r("localhost"))
    print("gethostbyname2_r", by_r("localhost", socket.AF_INET))
    print("gethostbyname_r ip", by_r("127.0.0.1"))
    sys.exit(0)

func, port, text = sys.argv[2], int(sys.argv[3]), sys.argv[4]
if func == "getaddrinfo":
    print(gai("localhost", None, 0, socket.AF_INET), file=sys.stderr)
elif func == "gethostbyname":
    print(fmt_hostent(libc.gethostbyname(b"localhost")), file=sys.stderr)
elif func == "gethostbyname2":
    print(fmt_hostent(libc.gethostbyname2(b"localhost", socket.AF_INET)),
          file=sys.stderr)
elif func == "gethostbyname_r":
    print(by_r("localhost"), file=sys.stderr)
elif func == "gethostbyname2_r":
    print(by_r("localhost", socket.AF_INET), file=sys.stderr)
elif func != "none":
    sys.exit("unknown function " + func)
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(20)
s.connect(("127.0.0.1", port))
s.sendall(text.encode())
s.shutdown(socket.SHUT_WR)
out = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    out += d
sys.stdout.write(out.decode(errors="replace"))
