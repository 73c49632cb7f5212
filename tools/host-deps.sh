#!/bin/sh
# The host packages faultline needs, by distribution and release: prints their names on one
# line for the os-release file given (default /etc/os-release). `make deps` installs what of
# it is missing; tests feed it the os-release files in tools/testdata/os-release/.
#
# Known: Debian 12 and 13, Ubuntu 22.04 and 24.04 (the names are the same; Ubuntu needs
# debian-archive-keyring, from universe, to build Debian guests). Another system is exit 2
# with one line.
set -eu
file=${1:-/etc/os-release}
if [ ! -r "$file" ]; then
  echo "host-deps: cannot read $file" >&2
  exit 2
fi
# os-release is KEY=value with optional quotes; read it without running it.
field() { sed -n "s/^$1=//p" "$file" | sed 's/^"\(.*\)"$/\1/; s/^'"'"'\(.*\)'"'"'$/\1/' | head -n 1; }
id=$(field ID)
version=$(field VERSION_ID)

# QEMU, qemu-img, the image builder and its file system tools, tshark for the tests' trace
# checks, nbdkit for extra disks, and the keys that verify deb.debian.org.
common="qemu-system-x86 qemu-utils mmdebstrap e2fsprogs tshark nbdkit debian-archive-keyring"

case "$id:$version" in
  debian:12 | debian:13 | ubuntu:24.04)
    echo "$common"
    ;;
  ubuntu:22.04)
    echo "host-deps: Ubuntu 22.04's QEMU is 6.2, without -netdev stream (7.2): labs link their NICs to the switch by TCP loopback (-netdev socket) instead, not yet tried on a real 22.04 host" >&2
    echo "$common"
    ;;
  *)
    echo "host-deps: ${id:-an unknown system} ${version} is not one faultline knows the packages of (Debian 12/13, Ubuntu 22.04/24.04)" >&2
    exit 2
    ;;
esac
