#!/bin/sh
# Every exported hook has its twins (docs/design.md, "How to add a hook"):
#   1. a fortified twin: where glibc exports __NAME_chk for a hooked NAME,
#      the version script exports it too (a program built with
#      _FORTIFY_SOURCE calls the twin, never NAME);
#   2. a syscall() route: where the kernel has a system call NAME, the
#      syscall hook's switch sends SYS_NAME through the hook, or NAME is
#      listed below with the reason it need not be (a program can make
#      the call through syscall(2) and pass every libc door);
#   3. the version script and the code agree: every function the preload's
#      objects give default visibility (TS_EXPORT) is in the script, and
#      every name in it is such a function (a hook left out of the script
#      is silently not a hook).
# usage: TS_HOOK_ARCHIVES=A.a:B.a check-hooks.sh libtlsshim.sym
#        hook_syscall.c libc.so.6 CC...
set -eu
sym=$1 sw=$2 libc=$3
shift 3

# A system call a hook covers that syscall() does not route: "NAME why".
unrouted='
socket a new socket is nobody'"'"'s: a stale entry on its number is purged at connect
poll readiness only: no byte moves, and the kernel'"'"'s answer is all a raw call can get
ppoll readiness only (as poll)
select readiness only (as poll)
epoll_ctl readiness only (as poll)
epoll_wait readiness only (as poll)
epoll_pwait readiness only (as poll)
epoll_pwait2 readiness only (as poll)
getsockopt socket options move no byte
setsockopt socket options move no byte
'

hooks=$(sed -n 's/^[[:space:]]*\([A-Za-z0-9_]*\);$/\1/p' "$sym" | sort -u)
[ -n "$hooks" ] || { echo "no names in $sym" >&2; exit 1; }
syscalls=$(printf '#include <sys/syscall.h>\n' | "$@" -dM -E - |
	sed -n 's/^#define SYS_\([a-z0-9_]*\) .*/\1/p' | sort -u)
[ -n "$syscalls" ] || { echo "no system call names from $*" >&2; exit 1; }
chk=$(nm -D --defined-only "$libc" | awk '{print $3}' |
	sed -n 's/@.*//; s/^__\(.*\)_chk$/\1/p' | sort -u)
[ -n "$chk" ] || { echo "no __*_chk names in $libc" >&2; exit 1; }

bad=0
for h in $hooks; do
	if printf '%s\n' "$chk" | grep -qx "$h" &&
		! printf '%s\n' "$hooks" | grep -qx "__${h}_chk"; then
		echo "$h is hooked but its fortified twin __${h}_chk is not" \
			"(add it to $sym, sharing $h's path)"
		bad=1
	fi
	case $h in __*_chk)
		t=${h#__}
		t=${t%_chk}
		printf '%s\n' "$hooks" | grep -qx "$t" ||
			{ echo "$h is hooked but $t is not"; bad=1; }
		;;
	esac
	printf '%s\n' "$syscalls" | grep -qx "$h" || continue
	if grep -q "case SYS_$h:" "$sw"; then
		if printf '%s\n' "$unrouted" | grep -q "^$h "; then
			echo "$h is routed in $sw and listed as unrouted here"
			bad=1
		fi
		continue
	fi
	printf '%s\n' "$unrouted" | grep -q "^$h " && continue
	echo "$h is hooked but syscall(SYS_$h, ...) passes no hook: route it" \
		"in $sw (or say here why it need not be)"
	bad=1
done
# 3: TS_EXPORT functions of the preload's archives against the script.
[ -n "${TS_HOOK_ARCHIVES:-}" ] || { echo "TS_HOOK_ARCHIVES is not set" >&2; exit 1; }
exported=$(printf '%s\n' "$TS_HOOK_ARCHIVES" | tr ':' '\n' |
	xargs readelf -sW |
	awk '$4 == "FUNC" && $5 == "GLOBAL" && $6 == "DEFAULT" && $7 != "UND" { print $8 }' |
	sort -u)
[ -n "$exported" ] || { echo "no exported functions in $TS_HOOK_ARCHIVES" >&2; exit 1; }
for h in $exported; do
	printf '%s\n' "$hooks" | grep -qx "$h" ||
		{ echo "$h is TS_EXPORT but not in $sym: it is no hook"; bad=1; }
done
for h in $hooks; do
	printf '%s\n' "$exported" | grep -qx "$h" ||
		{ echo "$h is in $sym but no function of the preload exports it"; bad=1; }
done
# An exemption for a name that is no longer hooked is stale.
printf '%s\n' "$unrouted" | while read -r n _; do
	[ -n "$n" ] || continue
	printf '%s\n' "$hooks" | grep -qx "$n" ||
		{ echo "$n is listed as unrouted but not hooked"; exit 1; }
done || bad=1
[ $bad -eq 0 ] && echo "$(printf '%s\n' "$hooks" | wc -l) hooks: twins and routes complete"
exit $bad
