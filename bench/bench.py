#!/usr/bin/env python3
"""Drive the tlsshim benchmarks: start loopback servers, run every variant
of every measure alternately, print medians and paired ratios (markdown).

Variants: plaintext; bench-native (a GnuTLS client verifying like tlsshim);
bench-client under tlsshim; bench-client through stunnel (client mode);
bench-client through socat OPENSSL. Server mode (issue 16, --only server):
bench-native against the plaintext bench-server under tlsshim with an
accept rule, against bench-server with its own GnuTLS, and against stunnel
(server mode) in front of the plaintext one. Run through bench/run.sh."""
import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

FULL = dict(bulk=1 << 30, connect=2000, pingpong=20000, startup=200,
            devnull=1000000, callgrind=100000, hold=1000, eventloop=500,
            repeat=5)
QUICK = dict(bulk=64 << 20, connect=200, pingpong=2000, startup=30,
             devnull=100000, callgrind=20000, hold=200, eventloop=100,
             repeat=3)
TIMEOUT = 300


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, t=10):
    end = time.time() + t
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on port %d" % port)


def parse(line):
    return {k: float(v) for k, v in re.findall(r"(\w+)=([0-9.]+)", line)}


class Bench:
    def __init__(self, args):
        self.a = args
        self.build = os.path.abspath(args.build)
        self.p = QUICK if args.quick else FULL
        if args.repeat:
            self.p = dict(self.p, repeat=args.repeat)
        self.tmp = tempfile.mkdtemp(prefix="tlsshim-bench.")
        self.procs = []
        self.client = os.path.join(self.build, "bench", "bench-client")
        self.native = os.path.join(self.build, "bench", "bench-native")
        self.server = os.path.join(self.build, "bench", "bench-server")
        self.preload = os.path.join(self.build, "src", "libtlsshim.so")
        self.notes = []

    # --- set-up -------------------------------------------------------
    def sh(self, *cmd):
        subprocess.run(cmd, check=True, cwd=self.tmp,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=60)

    def gencerts(self):
        w = lambda n, s: open(os.path.join(self.tmp, n), "w").write(s)
        w("ca.tmpl", 'cn = "tlsshim bench CA"\nca\ncert_signing_key\n'
          "expiration_days = 2\n")
        w("srv.tmpl", 'cn = "localhost"\ndns_name = "localhost"\n'
          'ip_address = "127.0.0.1"\ntls_www_server\nsigning_key\n'
          "expiration_days = 2\n")
        for k in ("ca.key", "srv.key"):
            self.sh("certtool", "--generate-privkey", "--key-type=ecdsa",
                    "--curve=secp256r1", "--outfile", k)
        self.sh("certtool", "--generate-self-signed", "--load-privkey",
                "ca.key", "--template", "ca.tmpl", "--outfile", "ca.pem")
        self.sh("certtool", "--generate-certificate", "--load-privkey",
                "srv.key", "--load-ca-certificate", "ca.pem",
                "--load-ca-privkey", "ca.key", "--template", "srv.tmpl",
                "--outfile", "srv.pem")
        self.ca = os.path.join(self.tmp, "ca.pem")

    def start(self, name, *args, prog=None, env=None):
        """A server that writes its port to NAME.port: bench-server, or
        prog; env is added to a copy of ours without LD_PRELOAD."""
        pf = os.path.join(self.tmp, name + ".port")
        e = dict(os.environ)
        e.pop("LD_PRELOAD", None)
        e.update(env or {})
        p = subprocess.Popen([prog or self.server, "-p", pf] + list(args),
                             cwd=self.tmp, env=e)
        self.procs.append(p)
        end = time.time() + 10
        while not os.path.exists(pf):
            if time.time() > end or p.poll() is not None:
                raise RuntimeError("server %s did not start" % name)
            time.sleep(0.02)
        return int(open(pf).read())

    def servers(self):
        tls = ["-c", "srv.pem", "-k", "srv.key"]
        self.port = {
            "plain-sink": self.start("plain-sink", "-m", "sink"),
            "plain-echo": self.start("plain-echo", "-m", "echo"),
            "tls-sink": self.start("tls-sink", "-m", "sink", *tls),
            "tls-echo": self.start("tls-echo", "-m", "echo", *tls),
            # no tickets: every handshake is a full one
            "tls-echo-full": self.start("tls-echo-full", "-m", "echo",
                                        "-T", *tls),
        }
        # one policy per TLS server: the rule selects it by port
        self.policy = {}
        for k in ("tls-sink", "tls-echo", "tls-echo-full"):
            f = os.path.join(self.tmp, k + ".conf")
            open(f, "w").write(
                "[bench]\nmatch = 127.0.0.1:%d\nsni = localhost\n"
                "ca-file = %s\n" % (self.port[k], self.ca))
            self.policy[k] = f
        self.tunnels()

    def tunnels(self):
        self.stunnel = shutil.which("stunnel4") or shutil.which("stunnel")
        self.socat = shutil.which("socat")
        self.tport = {}
        if self.stunnel:
            conf = ["foreground = yes", "pid =", "debug = 3",
                    "output = %s/stunnel.log" % self.tmp]
            for k in ("tls-sink", "tls-echo", "tls-echo-full"):
                p = free_port()
                self.tport[("stunnel", k)] = p
                conf += ["[%s]" % k, "client = yes",
                         "accept = 127.0.0.1:%d" % p,
                         "connect = 127.0.0.1:%d" % self.port[k],
                         "CAfile = %s" % self.ca, "verifyChain = yes",
                         "checkHost = localhost", "sni = localhost"]
            f = os.path.join(self.tmp, "stunnel.conf")
            open(f, "w").write("\n".join(conf) + "\n")
            self.procs.append(subprocess.Popen([self.stunnel, f]))
            for k in ("tls-sink", "tls-echo", "tls-echo-full"):
                wait_port(self.tport[("stunnel", k)])
        else:
            self.notes.append("stunnel not installed: variant skipped")
        if self.socat:
            for k in ("tls-sink", "tls-echo", "tls-echo-full"):
                p = free_port()
                self.tport[("socat", k)] = p
                self.procs.append(subprocess.Popen(
                    [self.socat,
                     "TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork" % p,
                     "OPENSSL:127.0.0.1:%d,cafile=%s,commonname=localhost,"
                     "verify=1" % (self.port[k], self.ca)]))
                wait_port(p)
        else:
            self.notes.append("socat not installed: variant skipped")

    def server_mode(self):
        """Issue 16: the plaintext bench-server (sink, echo, source) under
        tlsshim with an accept rule; tests/server/echo_epoll under tlsshim
        when built; stunnel in server mode in front of the plaintext
        servers. The native side is bench-server with -c (tls-sink,
        tls-echo, tls-source: all issue session tickets, as tlsshim
        does)."""
        f = os.path.join(self.tmp, "server.conf")
        # Every listener of these processes is the benchmark's.
        open(f, "w").write("[bench-in]\naccept = 1-65535\ncert = %s\n"
                           "key = %s\n" % (os.path.join(self.tmp, "srv.pem"),
                                            os.path.join(self.tmp, "srv.key")))
        shim = {"LD_PRELOAD": self.preload, "TLSSHIM_POLICY": f}
        self.shim_down = {}
        self.port["plain-source"] = self.start("plain-source", "-m",
                                               "source")
        self.port["tls-source"] = self.start("tls-source", "-m", "source",
                                             "-c", "srv.pem", "-k",
                                             "srv.key")
        for m in ("sink", "echo", "source"):
            self.port["shim-" + m] = self.start("shim-" + m, "-m", m,
                                                env=shim)
        epoll = os.path.join(self.build, "tests", "server", "echo_epoll")
        if os.access(epoll, os.X_OK):
            self.port["shim-epoll"] = self.start(
                "shim-epoll", "-r", os.devnull, "-t", "86400", prog=epoll,
                env=shim)
        else:
            self.notes.append("%s not built: no epoll server variant"
                              % epoll)
        # A server under tlsshim that does not answer TLS would hold a
        # bulk run until TIMEOUT in every round: one small connect first.
        probes = {"shim-sink": ["bulk", "65536"],
                  "shim-source": ["download", "65536"]}
        for k in ("shim-sink", "shim-source", "shim-echo", "shim-epoll"):
            if k not in self.port:
                continue
            # A sink or a source takes a length first; an echo a connect.
            probe = probes.get(k, ["connect", "1"])
            try:
                self.run([self.native, "-a", self.ca, "-n", "localhost"] +
                         probe + ["127.0.0.1", str(self.port[k])],
                         timeout=20)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                self.shim_down[k] = "no verified TLS from %s: %s" % (
                    k, str(e)[-160:])
        if not self.stunnel:
            return
        conf = ["foreground = yes", "pid =", "debug = 3",
                "output = %s/stunnel-server.log" % self.tmp]
        for m in ("sink", "echo", "source"):
            p = free_port()
            self.tport[("stunnel-server", m)] = p
            conf += ["[server-%s]" % m, "accept = 127.0.0.1:%d" % p,
                     "connect = 127.0.0.1:%d" % self.port["plain-" + m],
                     "cert = %s/srv.pem" % self.tmp,
                     "key = %s/srv.key" % self.tmp]
        f = os.path.join(self.tmp, "stunnel-server.conf")
        open(f, "w").write("\n".join(conf) + "\n")
        self.procs.append(subprocess.Popen(
            [self.stunnel, f], stderr=open(os.path.join(
                self.tmp, "stunnel-server.err"), "w")))
        for m in ("sink", "echo", "source"):
            wait_port(self.tport[("stunnel-server", m)])

    def stop(self):
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # --- running ------------------------------------------------------
    def run(self, argv, env=None, timeout=TIMEOUT):
        e = dict(os.environ)
        e.pop("LD_PRELOAD", None)
        e.update(env or {})
        r = subprocess.run(argv, env=e, capture_output=True, text=True,
                           timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError("%s: exit %d: %s" % (" ".join(argv),
                               r.returncode, r.stderr.strip()[-500:]))
        return parse(r.stdout)

    def shim_env(self, server):
        return {"LD_PRELOAD": self.preload, "TLSSHIM_POLICY":
                self.policy[server]}

    def variants(self, mode, arg, server, resume=False, threaded=False):
        """name -> thunk running one sample of mode against server."""
        c, n, a = self.client, self.native, str(arg)
        plain = "plain-" + server.split("-")[1]
        v = {
            "plaintext": lambda: self.run([c, mode, a, "127.0.0.1",
                                           str(self.port[plain])]),
            "native GnuTLS": lambda: self.run(
                [n, "-a", self.ca, "-n", "localhost", mode, a, "127.0.0.1",
                 str(self.port[server])]),
            "tlsshim": lambda: self.run(
                [c, mode, a, "127.0.0.1", str(self.port[server])],
                self.shim_env(server)),
        }
        for t in ("stunnel", "socat"):
            if (t, server) in self.tport:
                p, ta = self.tport[(t, server)], a
                if t == "socat" and mode == "connect":
                    # socat forks per connection and stalls on delayed
                    # ACKs (~12 conn/s): a rate from fewer connects
                    ta = str(min(arg, 200))
                v[t] = (lambda p=p, ta=ta: self.run([c, mode, ta,
                                                     "127.0.0.1", str(p)]))
        if threaded:
            # a process with threads: receives wait outside GnuTLS
            v["tlsshim, threaded process"] = lambda: self.run(
                [c, "-t", mode, a, "127.0.0.1", str(self.port[server])],
                self.shim_env(server))
        if resume:
            r = "tls-echo"
            v["native GnuTLS, resumption"] = lambda: self.run(
                [n, "-r", "-a", self.ca, "-n", "localhost", mode, a,
                 "127.0.0.1", str(self.port[r])])
            v["tlsshim, resumption"] = lambda: self.run(
                [c, mode, a, "127.0.0.1", str(self.port[r])],
                self.shim_env(r))
        return v

    def alternate(self, variants, key):
        """Repeat rounds; each round runs every variant once, in a rotated
        order. Returns name -> [samples] (one per round, paired)."""
        names = list(variants)
        out = {k: [] for k in names}
        for r in range(self.p["repeat"]):
            order = names[r % len(names):] + names[:r % len(names)]
            for k in order:
                try:
                    out[k].append(variants[k]()[key])
                except (RuntimeError, subprocess.TimeoutExpired,
                        KeyError) as e:
                    out[k].append(None)
                    self.notes.append("%s failed in round %d: %s"
                                      % (k, r + 1, str(e)[:300]))
        return out


def med(x):
    x = [v for v in x if v is not None]
    return statistics.median(x) if x else float("nan")


def ratios(samples, base, k):
    return med([a / b for a, b in zip(samples[k], samples[base])
                if a is not None and b])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeat", type=int)
    ap.add_argument("--only", default="bulk,connect,pingpong,startup,"
                    "untouched,memory,eventloop,server")
    ap.add_argument("--out", help="also write the markdown here")
    args = ap.parse_args()
    b = Bench(args)
    only = args.only.split(",")
    lines = []
    emit = lines.append
    try:
        b.gencerts()
        b.servers()
        P = b.p
        emit("| measure | variant | median | ÷ native GnuTLS (paired median) "
             "| target |")
        emit("|---|---|---|---|---|")

        def table(title, s, unit, fmt, target_for, base="native GnuTLS",
                  extra=None):
            for k in s:
                r = ratios(s, base, k) if base in s else float("nan")
                emit("| %s | %s | %s %s | %.2f | %s |" % (
                    title, k, fmt % med(s[k]), unit, r,
                    target_for.get(k, "")))
            if extra:
                emit(extra)

        if "bulk" in only:
            log("bulk ...")
            s = b.alternate(b.variants("bulk", P["bulk"], "tls-sink"),
                            "mibps")
            table("bulk %d MiB, 16 KiB writes" % (P["bulk"] >> 20), s,
                  "MiB/s", "%.0f", {"tlsshim": "≥ 0.95"})
        if "connect" in only:
            log("connect ...")
            s = b.alternate(b.variants("connect", P["connect"],
                                       "tls-echo-full", resume=True), "cps")
            r = ratios(s, "tlsshim", "tlsshim, resumption")
            table("connect ×%d (1 byte each way)" % P["connect"], s,
                  "conn/s", "%.0f", {"tlsshim": "≥ 0.90"},
                  extra="| connect | tlsshim resumption ÷ full handshakes "
                  "| | %.2f | ≥ 1.3 |" % r)
        if "pingpong" in only:
            log("pingpong ...")
            s = b.alternate(b.variants("pingpong", P["pingpong"],
                                       "tls-echo", threaded=True),
                            "median_us")
            table("ping-pong ×%d, 64 B" % P["pingpong"], s, "µs RTT",
                  "%.1f", {"tlsshim": "≤ 1.10"})
        if "startup" in only:
            log("startup ...")
            for l in startup(b):
                emit(l)
        if "untouched" in only:
            log("untouched ...")
            for l in untouched(b):
                emit(l)
        if "memory" in only:
            log("memory ...")
            for l in memory(b):
                emit(l)
        if "server" in only:
            log("server ...")
            b.server_mode()
            for mode, kind, where, what in (
                    ("bulk", "sink", "into", "bulk in"),
                    ("download", "source", "out of", "bulk out")):
                s = b.alternate(server_variants(b, mode, P["bulk"], kind),
                                "mibps")
                table("server mode: bulk %d MiB %s the server, 16 KiB "
                      "writes" % (P["bulk"] >> 20, where), s, "MiB/s",
                      "%.0f", {"tlsshim server": "≥ 0.95"},
                      base="native GnuTLS server",
                      extra=versus_stunnel(s, what))
            s = b.alternate(server_variants(b, "connect", P["connect"],
                                            "echo", resume=True), "cps")
            table("server mode: handshakes ×%d (1 byte each way)"
                  % P["connect"], s, "conn/s", "%.0f",
                  {"tlsshim server": "≥ 0.90",
                   "tlsshim, epoll server": "≥ 0.90"},
                  base="native GnuTLS server",
                  extra=versus_stunnel(s, "handshakes"))
        if "eventloop" in only:
            log("eventloop ...")
            s = b.alternate(eventloop(b), "secs")
            table("issue 4: %d concurrent connects in one asyncio loop"
                  % P["eventloop"], s, "s", "%.3f", {},
                  base="python ssl (asyncio)")
    finally:
        b.stop()
    head = describe(b, args)
    text = "\n".join(head + [""] + lines + [""] +
                     ["Note: " + n for n in b.notes]) + "\n"
    print(text)
    if args.out:
        open(args.out, "w").write(text)


def versus_stunnel(s, what):
    """The row that says how far ahead of the tunnel tlsshim is."""
    if "stunnel server" not in s:
        return None
    return ("| server mode: %s | tlsshim server ÷ stunnel server (paired "
            "median) | | %.2f | > 1 |" % (what, ratios(s, "stunnel server",
                                                       "tlsshim server")))


def server_variants(b, mode, arg, kind, resume=False):
    """Server mode: one client, bench-native (GnuTLS, verifying), against
    each server; plaintext is bench-client against the plaintext server."""
    n, a = b.native, str(arg)

    def native(server, *opt):
        if server in b.shim_down:
            # Reported as a failure in every round, at no cost.
            def down():
                raise RuntimeError(b.shim_down[server])
            return down
        port = b.port[server]
        return lambda: b.run([n, "-a", b.ca, "-n", "localhost"] + list(opt)
                             + [mode, a, "127.0.0.1", str(port)])
    v = {
        "plaintext": lambda: b.run([b.client, mode, a, "127.0.0.1",
                                    str(b.port["plain-" + kind])]),
        "native GnuTLS server": native("tls-" + kind),
        "tlsshim server": native("shim-" + kind),
    }
    if ("stunnel-server", kind) in b.tport:
        p = b.tport[("stunnel-server", kind)]
        v["stunnel server"] = lambda: b.run(
            [n, "-a", b.ca, "-n", "localhost", mode, a, "127.0.0.1", str(p)])
    if kind == "echo" and "shim-epoll" in b.port:
        v["tlsshim, epoll server"] = native("shim-epoll")
    if resume:
        v["native GnuTLS server, resumption"] = native("tls-" + kind, "-r")
        v["tlsshim server, resumption"] = native("shim-" + kind, "-r")
    return v


def startup(b):
    """Start-up of `true` with and without the preload. Runs alternate in
    rounds (the order flips each round) so that drift in the machine's
    speed falls on both sides; the ratio is the median of the per-round
    ratios of medians, as for the other measures."""
    env_pre = "LD_PRELOAD=%s TLSSHIM_POLICY=%s" % (b.preload,
                                                   b.policy["tls-echo"])
    cmds = ["env %s true" % env_pre, "env true"]
    n, rounds = b.p["startup"], b.p["repeat"]
    per = max(n // rounds, 5)
    hf = shutil.which("hyperfine")
    t = [[], []]
    for r in range(rounds):
        order = [0, 1] if r % 2 == 0 else [1, 0]
        if hf:
            out = os.path.join(b.tmp, "hf.json")
            subprocess.run([hf, "-N", "--warmup", "5", "--runs", str(per),
                            "--export-json", out] + [cmds[j] for j in order],
                           check=True, capture_output=True, timeout=TIMEOUT)
            res = json.load(open(out))["results"]
            for j, x in zip(order, res):
                t[j].append(med(x["times"]) * 1e3)
        else:
            x = [[], []]
            for i in range(per):
                for j in order:
                    t0 = time.perf_counter()
                    subprocess.run(cmds[j].split(), check=True)
                    x[j].append(time.perf_counter() - t0)
            for j in (0, 1):
                t[j].append(med(x[j]) * 1e3)
    how = "%s, %d rounds of %d runs" % (
        "hyperfine" if hf else "fork/exec loop", rounds, per)
    ratio = med([a / c for a, c in zip(t[0], t[1])])
    out = ["| start-up (`env [LD_PRELOAD=libtlsshim.so] true`, %s) | "
           "preload ÷ none | %.2f ms vs %.2f ms | %.2f | ≤ 1.10 |"
           % (how, med(t[0]), med(t[1]), ratio)]
    vg = shutil.which("valgrind")
    if vg:
        ir = []
        for env in ({"LD_PRELOAD": b.preload,
                     "TLSSHIM_POLICY": b.policy["tls-echo"]}, {}):
            ir.append(callgrind_total(b, [vg, "--tool=callgrind"], env,
                                      [shutil.which("true")]))
        out.append("| start-up, user-space instructions (callgrind, `true`) "
                   "| preload ÷ none | %d vs %d Ir | %.2f | |"
                   % (ir[0], ir[1], ir[0] / ir[1]))
    return out


def callgrind_total(b, vg, env, argv):
    f = os.path.join(b.tmp, "cg.out")
    e = dict(os.environ)
    e.pop("LD_PRELOAD", None)
    e.update(env)
    subprocess.run(vg + ["--callgrind-out-file=" + f] + argv, env=e,
                   check=True, capture_output=True, timeout=TIMEOUT)
    tot = [l for l in open(f) if l.startswith(("summary:", "totals:"))]
    return int(tot[-1].split()[1])


def untouched(b):
    n = b.p["devnull"]
    pre = {"LD_PRELOAD": b.preload, "TLSSHIM_POLICY": b.policy["tls-echo"]}
    s = {"with": [], "without": []}
    for r in range(b.p["repeat"]):
        s["without"].append(b.run([b.client, "devnull", str(n)])
                            ["ns_per_write"])
        s["with"].append(b.run([b.client, "devnull", str(n)], pre)
                         ["ns_per_write"])
    out = ["| untouched fd: %d write(2) of 1 byte to /dev/null | preload "
           "÷ none | %.0f ns vs %.0f ns | %.3f | |" % (
               n, med(s["with"]), med(s["without"]),
               med([a / b_ for a, b_ in zip(s["with"], s["without"])]))]
    vg = shutil.which("valgrind")
    if not vg:
        b.notes.append("valgrind not installed: no instruction counts")
        return out
    n = b.p["callgrind"]
    ir = {}
    for k, env in (("without", {}), ("with", pre)):
        ir[k] = callgrind_total(
            b, [vg, "--tool=callgrind", "--toggle-collect=devnull_loop"],
            env, [b.client, "devnull", str(n)])
    d = (ir["with"] - ir["without"]) / n
    out.append("| untouched fd: user-space instructions per write (callgrind, "
               "%d writes) | preload − none | %.1f vs %.1f Ir | +%.1f | ≤ +10 |"
               % (n, ir["with"] / n, ir["without"] / n, d))
    return out


def memory(b):
    n = b.p["hold"]
    s = {}
    runs = {
        "plaintext": lambda: b.run([b.client, "hold", str(n), "127.0.0.1",
                                    str(b.port["plain-echo"])]),
        "native GnuTLS": lambda: b.run(
            [b.native, "-a", b.ca, "-n", "localhost", "hold", str(n),
             "127.0.0.1", str(b.port["tls-echo"])]),
        "tlsshim": lambda: b.run(
            [b.client, "hold", str(n), "127.0.0.1", str(b.port["tls-echo"])],
            b.shim_env("tls-echo")),
    }
    for k, f in runs.items():
        s[k] = [f()["per_conn_kib"]]
    return ["| memory: RSS per idle connection (%d held) | %s | %.1f KiB | "
            "| %s |" % (n, k, s[k][0], "≤ 64" if k == "tlsshim" else "")
            for k in s]


def eventloop(b):
    """Issue 4: N concurrent connects (+1 byte echoed) in one asyncio loop;
    tlsshim vs the same loop using Python's ssl module (full handshakes)."""
    py = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "eventloop.py")
    n, srv = str(b.p["eventloop"]), "tls-echo-full"
    return {
        "plaintext": lambda: b.run(["python3", py, "plain", n, str(
            b.port["plain-echo"])]),
        "python ssl (asyncio)": lambda: b.run(
            ["python3", py, "ssl", n, str(b.port[srv]), b.ca]),
        "tlsshim": lambda: b.run(["python3", py, "plain", n,
                                  str(b.port[srv])], b.shim_env(srv)),
    }


def describe(b, args):
    cpu = "?"
    for l in open("/proc/cpuinfo"):
        if l.startswith("model name"):
            cpu = l.split(":", 1)[1].strip()
            break
    gv = subprocess.run(["certtool", "--version"], capture_output=True,
                        text=True).stdout.splitlines()[0]
    return ["Machine: %s, %d CPUs, Linux %s; %s; %s mode, %d rounds "
            "(variants alternate, medians; ratios are medians of "
            "per-round ratios)." % (cpu, os.cpu_count(), platform.release(),
                                   gv, "quick" if args.quick else "full",
                                   b.p["repeat"]),
            "TLS 1.3, AES-256-GCM, ECDSA P-256 server certificate, "
            "loopback; the server is bench-server (GnuTLS, one thread per "
            "connection)."]


if __name__ == "__main__":
    main()
