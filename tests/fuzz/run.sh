#!/bin/sh
# run.sh FUZZER SECONDS [WORKDIR]: run a libFuzzer target for a bounded
# time over a fresh seed corpus (policies/ and the unit-test cases).
# New inputs go to WORKDIR/corpus, crashes to WORKDIR/crash-*; a crash
# makes this fail and prints the input to turn into a unit test.
set -eu
fuzzer=$1
seconds=$2
src=$(cd "$(dirname "$0")/../.." && pwd)
work=${3:-$(mktemp -d)}
mkdir -p "$work/corpus"
python3 "$src/tests/fuzz/make-corpus.py" "$work/seeds" \
	"$src"/policies/*.conf "$src"/tests/unit/test_policy.c \
	"$src"/tests/unit/test_match.c
# -timeout: one input taking over 5 s is a hang (the parser is linear).
set +e
"$fuzzer" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=1024 \
	-max_len=8192 -print_final_stats=1 -artifact_prefix="$work/" \
	"$work/corpus" "$work/seeds" 2>"$work/fuzz.log"
rc=$?
set -e
tail -n 12 "$work/fuzz.log"
if [ "$rc" -ne 0 ]; then
	echo "fuzz: $fuzzer failed (exit $rc); inputs:" >&2
	for f in "$work"/crash-* "$work"/timeout-* "$work"/leak-* "$work"/oom-*; do
		[ -e "$f" ] || continue
		echo "== $f" >&2
		od -c "$f" | head -n 20 >&2
	done
	exit 1
fi
