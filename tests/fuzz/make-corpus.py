#!/usr/bin/env python3
"""make-corpus.py OUTDIR SOURCES...: the fuzzer's seed corpus.

A .conf file is one seed. From a .c file, every run of adjacent C string
literals that looks like policy text (has a newline, '=' or '[') is one
seed, so each unit-test case is a seed as soon as it is written."""
import ast
import hashlib
import os
import re
import sys

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
lit = re.compile(r'"(?:[^"\\\n]|\\.)*"')
run = re.compile(r'(?:"(?:[^"\\\n]|\\.)*"\s*)+')


def seed(data):
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)


n = 0
for src in sys.argv[2:]:
    with open(src, "rb") as f:
        text = f.read()
    if not src.endswith(".c"):
        seed(text)
        n += 1
        continue
    for m in run.finditer(text.decode("utf-8", "replace")):
        s = "".join(ast.literal_eval(x) for x in lit.findall(m.group(0)))
        if "\n" in s or "=" in s or "[" in s:
            seed(s.encode("utf-8", "surrogateescape"))
            n += 1
print("%d seeds in %s" % (n, out))
