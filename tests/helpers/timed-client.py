#!/usr/bin/env python3
"""One process, several connections over time: what a long-running
program sees while its trust material changes or its server's certificate
expires (run under the preload).

  timed-client.py PORT MARKER STEP...
    conn      connect to 127.0.0.1:PORT, send MARKER-N (N counts the
              connects), print "N ok", "N refused" or what went wrong
    at=S      sleep until S seconds after the start
    sleep=S   sleep S seconds
    run=CMD   run CMD with sh, without LD_PRELOAD (a cron job)
"""
import errno
import os
import socket
import subprocess
import sys
import time

port, marker = int(sys.argv[1]), sys.argv[2]
start = time.monotonic()
env = dict(os.environ)
env.pop("LD_PRELOAD", None)
n = 0
for step in sys.argv[3:]:
    if step == "conn":
        n += 1
        tag = ("%s-%d" % (marker, n)).encode()
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError as e:
            print(n, "refused" if e.errno == errno.ECONNREFUSED else e,
                  flush=True)
            continue
        s.sendall(tag)
        s.shutdown(socket.SHUT_WR)
        got = b"".join(iter(lambda: s.recv(4096), b""))
        print(n, "ok" if got == tag else "bad %r" % got, flush=True)
        s.close()
    elif step.startswith("at="):
        time.sleep(max(0.0, float(step[3:]) - (time.monotonic() - start)))
    elif step.startswith("sleep="):
        time.sleep(float(step[6:]))
    elif step.startswith("run="):
        subprocess.run(step[4:], shell=True, env=env, check=True)
    else:
        sys.exit("unknown step " + step)
