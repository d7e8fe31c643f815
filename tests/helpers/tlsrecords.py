#!/usr/bin/env python3
"""Judging TLS on the wire, without keys.

  tlsrecords.py reuse FILE... --plain A --plain B
      AES-GCM and ChaCha20 encrypt by XOR with a keystream fixed by key and
      nonce: two records sealed under one nonce XOR, over their common
      length, to the XOR of their plaintexts. For every pair of application
      data records in the files (each a client->server stream, e.g. the
      copies a forked parent and child would both write), test that against
      every pair of the known plaintexts (TLS 1.3 seals data || 0x17).
      Exit 1 and name the pair when a nonce was used twice, else 0.
  tlsrecords.py count FILE...
      The number of application data records.
  tlsrecords.py selftest
      The check finds a keystream used twice (AES-CTR by `openssl enc`,
      the same XOR as GCM's), and stays quiet for two keystreams."""
import argparse
import subprocess
import sys


def records(data):
    """(type, payload) of each TLS record of a byte stream."""
    i, out = 0, []
    while i + 5 <= len(data):
        typ, length = data[i], int.from_bytes(data[i + 3:i + 5], "big")
        if i + 5 + length > len(data):
            break
        out.append((typ, data[i + 5:i + 5 + length]))
        i += 5 + length
    return out


def app_records(paths):
    recs = []
    for path in paths:
        with open(path, "rb") as f:
            recs += [(path, i, p) for i, (t, p) in
                     enumerate(records(f.read())) if t == 0x17]
    return recs


def xor(a, b):
    return bytes(x ^ y for x, y in zip(a, b))


def reused(c1, c2, plains):
    """A pair of known plaintexts that explains c1 ^ c2, or None."""
    d = xor(c1, c2)
    for p1 in plains:
        for p2 in plains:
            if p1 == p2:
                continue
            want = xor(p1, p2)
            n = min(len(want), len(d))
            if n >= 8 and d[:n] == want[:n]:
                return p1, p2
    return None


def check(recs, plains):
    # TLS 1.3 appends the content type to the data before sealing.
    plains = [p + b"\x17" for p in plains] + plains
    for i in range(len(recs)):
        for j in range(i + 1, len(recs)):
            hit = reused(recs[i][2], recs[j][2], plains)
            if hit:
                return "records %s#%d and %s#%d share a nonce (%r, %r)" % (
                    recs[i][0], recs[i][1], recs[j][0], recs[j][1],
                    hit[0], hit[1])
    return None


def ctr(plain, iv):
    key = "00112233445566778899aabbccddeeff"
    return subprocess.run(
        ["openssl", "enc", "-aes-128-ctr", "-K", key, "-iv", iv],
        input=plain, capture_output=True, check=True).stdout


def selftest():
    a, b = b"PARENT-plaintext-0001", b"CHILD--plaintext-0002"
    iv1, iv2 = "0" * 32, "0" * 31 + "1"
    same = [("x", 0, ctr(a, iv1)), ("y", 0, ctr(b, iv1))]
    apart = [("x", 0, ctr(a, iv1)), ("y", 0, ctr(b, iv2))]
    if not check(same, [a, b]):
        sys.exit("selftest: a keystream used twice was not seen")
    if check(apart, [a, b]):
        sys.exit("selftest: two keystreams were taken for one")
    print("selftest ok")


ap = argparse.ArgumentParser()
ap.add_argument("cmd", choices=["reuse", "count", "selftest"])
ap.add_argument("files", nargs="*")
ap.add_argument("--plain", action="append", default=[])
args = ap.parse_args()
if args.cmd == "selftest":
    selftest()
elif args.cmd == "count":
    print(len(app_records(args.files)))
else:
    why = check(app_records(args.files), [p.encode() for p in args.plain])
    if why:
        sys.exit("nonce reuse: " + why)
    print("no nonce reuse in %d records" % len(app_records(args.files)))
