#!/bin/sh
# census.sh LIBC LEAK CENSUS BATS: every glibc export whose name says it
# may write to an fd, hand one on, make a connection or make a stream on
# an fd is listed in CENSUS with its verdict, and every test named there
# exists: leak:NAME is a path of the LEAK program and has its @test in
# BATS (tests/13-leaks.bats). A glibc that grows such an export fails here
# until it is judged.
set -eu
libc=$1 leak=$2 census=$3 bats=$4
pattern='write|send|splice|tee$|copy_file|print|put|exec|spawn|fork|clone|dup|close|connect|aio_|lio_|syscall|uring|submit|rcmd|fdopen|file_attach'
rc=0
exports=$(nm -D --defined-only "$libc" |
	awk '$2 ~ /^[TWi]$/ && $3 ~ /@@GLIBC_2/ { sub(/@.*/, "", $3); print $3 }' |
	sort -u | grep -E "$pattern")
[ -n "$exports" ] || { echo "census: no exports read from $libc"; exit 1; }
listed=$(grep -v '^#' "$census" | awk 'NF { print $1 }' | sort -u)
for s in $exports; do
	printf '%s\n' "$listed" | grep -qx "$s" || {
		echo "census: $s is exported by glibc but not judged in $census"
		rc=1
	}
done
for s in $listed; do
	printf '%s\n' "$exports" | grep -qx "$s" || {
		echo "census: $s is listed but glibc does not export it"
		rc=1
	}
done
paths=$("$leak" --list)
grep -v '^#' "$census" | awk 'NF && $3 ~ /^leak:/ { sub(/^leak:/, "", $3); print $1, $3 }' |
while read -r sym t; do
	printf '%s\n' "$paths" | grep -qx "$t" ||
		{ echo "census: $sym: leak.c has no path '$t'"; exit 1; }
	grep -q "^@test \"$t:" "$bats" ||
		{ echo "census: $sym: no @test \"$t: ...\" in $bats"; exit 1; }
done || rc=1
n=$(printf '%s\n' "$exports" | wc -l)
[ "$rc" -eq 0 ] && echo "census: $n glibc exports judged, each test present"
exit "$rc"
