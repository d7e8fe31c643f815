"""The loop every loopback test server shares: bind a free port, publish
it atomically in a port file, accept until a deadline (servers stop by
themselves), one thread per connection."""
import os
import socket
import threading
import time


def listen(host="127.0.0.1", backlog=128):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.bind((host, 0))
    s.listen(backlog)
    return s


def publish_port(sock, path):
    """Write the bound port to path; readers never see a partial file."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % sock.getsockname()[1])
    os.rename(tmp, path)


def serve(sock, handle, max_seconds):
    """handle(conn) in a thread per connection until max_seconds pass."""
    deadline = time.monotonic() + max_seconds
    while time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            c, _ = sock.accept()
        except socket.timeout:
            break
        c.settimeout(None)
        threading.Thread(target=handle, args=(c,), daemon=True).start()
