#!/bin/sh
# add-to-initramfs.sh DEPLOY.initramfs OUT.initramfs
#
# Appends the petitlab deploy agent to an existing deploy ramdisk, as a
# second gzip'ed cpio archive (the kernel unpacks concatenated archives in
# order, later files winning): /usr/bin/petitlab-agent, and /init replaced
# by agent/init. The ramdisk must already hold busybox (sh, wget, udhcpc,
# ip, sha256sum, head, sed, sleep, sync, mount) and the drivers for the
# node's NIC and disk.
set -eu
[ $# -eq 2 ] || { echo "usage: $0 DEPLOY.initramfs OUT.initramfs" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
in=$1
out=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/root/usr/bin"
cp "$here/petitlab-agent.sh" "$work/root/usr/bin/petitlab-agent"
cp "$here/init" "$work/root/init"
chmod 755 "$work/root/usr/bin/petitlab-agent" "$work/root/init"
(cd "$work/root" && find . | busybox cpio -o -H newc 2>/dev/null) | gzip -9 > "$work/agent.cpio.gz"

# Written next to OUT, then renamed: OUT is never half-written.
cat "$in" "$work/agent.cpio.gz" > "$out.tmp.$$"
mv "$out.tmp.$$" "$out"
echo "$out: $(wc -c < "$in") bytes of $in + $(wc -c < "$work/agent.cpio.gz") bytes of petitlab agent"
