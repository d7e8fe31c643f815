#!/usr/bin/env python3
"""close() latency after an upload (docs/performance.md, "Close").

  close_latency.py PORT BYTES REPS

REPS connections to 127.0.0.1:PORT, each sendall(BYTES) then close();
prints the median, 90th percentile and maximum time spent in close().
Run it plain and under tlsshim (LD_PRELOAD, TLSSHIM_POLICY) against a
sink such as build/tests/upload/tls_sink."""
import os
import socket
import sys
import time

port, n, reps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
data = os.urandom(n)
ts = []
for _ in range(reps):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(data)
    t = time.perf_counter()
    s.close()
    ts.append((time.perf_counter() - t) * 1e3)
ts.sort()
print("%d bytes, %d closes: median %.3f ms, p90 %.3f ms, max %.3f ms" %
      (n, reps, ts[len(ts) // 2], ts[int(len(ts) * 0.9)], ts[-1]))
