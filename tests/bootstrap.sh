#!/bin/sh
# Set up a fresh Debian 12 machine and run tlsshim's demonstration or its
# whole test suite:
#   tests/bootstrap.sh demo    install, build, run the demonstration
#   tests/bootstrap.sh test    install, build, run every test suite
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
what=${1:-test}

# Everything the build, the demonstration and the tests use.
packages="meson ninja-build pkg-config gcc libgnutls28-dev gnutls-bin
  bats bats-assert bats-support python3 curl wget socat nodejs
  netcat-openbsd ncat binutils procps"

missing=
for p in $packages; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
		grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
	sudo=
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	echo "installing:$missing"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
		--no-install-recommends $missing
fi

builddir=${TLSSHIM_BUILD_DIR:-build}
werror=false
[ "${CI:-}" = true ] && werror=true
if [ ! -d "$builddir" ]; then
	meson setup "$builddir" -Dwerror=$werror
fi
meson compile -C "$builddir"

case $what in
demo)
	exec sh tests/demo.sh "$builddir"
	;;
test)
	exec meson test -C "$builddir" --print-errorlogs
	;;
*)
	echo "usage: $0 demo|test" >&2
	exit 2
	;;
esac
