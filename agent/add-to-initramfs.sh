#!/bin/sh
# add-to-initramfs.sh [--modules-from DIR [--modules 'SEL ...']] DEPLOY.initramfs OUT.initramfs
#
# Appends the petitlab deploy agent to an existing deploy ramdisk, as a
# second gzip'ed cpio archive (the kernel unpacks concatenated archives in
# order, later files winning): /usr/bin/petitlab-agent, /init replaced by
# agent/init, and /usr/share/petitlab/udhcpc.script (Debian's busybox has no
# default udhcpc script). The ramdisk must already hold busybox; see
# docs/deploy-ramdisk.md for the applets.
#
# --modules-from DIR: the deploy kernel's module tree, /lib/modules/VERSION
# (of an installed kernel, or of its linux-image .deb unpacked with
# dpkg-deb -x). The NIC, disk and virtio drivers in it, or those --modules
# selects (a path under kernel/ or a module name, each), are copied with
# everything they depend on into the ramdisk's /lib/modules/VERSION,
# decompressed (busybox modprobe reads .ko, .ko.xz and .ko.gz but not
# .ko.zst, and a plain .ko also loads through finit_module), and indexed
# with busybox depmod. agent/init loads those the hardware asks for.
set -eu

DEFAULT_MODULES="drivers/net/ethernet drivers/net/phy drivers/net/mdio drivers/net/virtio_net
drivers/block drivers/nvme drivers/ata drivers/scsi drivers/message drivers/virtio"

usage() {
    echo "usage: $0 [--modules-from /lib/modules/VERSION [--modules 'SUBDIR|NAME ...']] DEPLOY.initramfs OUT.initramfs" >&2
    exit 2
}
die() {
    echo "$0: $*" >&2
    exit 1
}

modules_from=
selection=$DEFAULT_MODULES
while [ $# -gt 0 ]; do
    case $1 in
    --modules-from) [ $# -ge 2 ] || usage; modules_from=$2; shift 2 ;;
    --modules) [ $# -ge 2 ] || usage; selection=$2; shift 2 ;;
    --) shift; break ;;
    -*) usage ;;
    *) break ;;
    esac
done
[ $# -eq 2 ] || usage
here=$(cd "$(dirname "$0")" && pwd)
in=$1
out=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The module NAME's file in the tree, relative to it.
module_path() {
    awk -v n="$1" '$1 == n { print $2; exit }' "$work/index"
}

# copy_module NAME: copies it, decompressed, and prints what it depends on.
copy_module() {
    path=$(module_path "$1")
    [ -n "$path" ] || return 1
    ko=${path%.ko*}.ko
    mkdir -p "$dest/${ko%/*}"
    case $path in
    *.ko) cp "$src/$path" "$dest/$ko" ;;
    *.ko.xz) xz -dc "$src/$path" >"$dest/$ko" ;;
    *.ko.gz) gzip -dc "$src/$path" >"$dest/$ko" ;;
    *.ko.zst)
        command -v zstd >/dev/null || die "$src/$path is zstd-compressed: install zstd"
        zstd -dcq "$src/$path" >"$dest/$ko"
        ;;
    esac || die "cannot copy or decompress $src/$path"
    # The .modinfo strings are NUL-terminated: depends= lists the modules
    # whose symbols this one uses, softdep= what it asks the kernel to load
    # (libcrc32c: "pre: crc32c", the crypto driver crc32c_generic), which
    # the kernel does through /sbin/modprobe.
    tr '\0' '\n' <"$dest/$ko" | sed -n -e 's/^depends=/dep /p' -e 's/^softdep=/soft /p' |
        awk '{ for (i = 2; i <= NF; i++) if ($i !~ /:$/) { n = split($i, m, ","); for (j = 1; j <= n; j++) if (m[j] != "") print $1, m[j] } }'
}

# The selected modules of the tree and their dependencies, into the ramdisk.
copy_modules() {
    src=${1%/}
    version=${src##*/}
    case $version in
    [0-9]*.[0-9]*.[0-9]*) ;;
    *) die "$src: the directory's name must be the kernel version (like 6.1.0-48-amd64)" ;;
    esac
    [ -d "$src/kernel" ] || die "$src has no kernel/ directory: not a kernel's module tree"
    dest=$work/root/lib/modules/$version
    mkdir -p "$dest"
    # One line per module: its name (- and _ are the same) and its path.
    (cd "$src" && find kernel updates extra -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.gz' -o -name '*.ko.zst' 2>/dev/null) |
        awk '{ n = $0; sub(/.*\//, "", n); sub(/\.ko(\.(xz|gz|zst))?$/, "", n); gsub(/-/, "_", n); print n, $0 }' >"$work/index"
    for sel in $selection; do
        case $sel in
        */*)
            awk -v p="kernel/${sel%/}" '{ f = $2; sub(/\.ko(\.(xz|gz|zst))?$/, "", f)
                if (index($2, p "/") == 1 || f == p) print $1 }' "$work/index"
            ;;
        *)
            [ -n "$(module_path "$(echo "$sel" | tr - _)")" ] || die "no module $sel in $src"
            echo "$sel" | tr - _
            ;;
        esac
    done | sort -u >"$work/wanted"
    : >"$work/copied"
    # Each round copies what the last one found missing, until nothing is.
    while [ -s "$work/wanted" ]; do
        while read -r name; do
            grep -qxF "$name" "$work/copied" && continue
            echo "$name" >>"$work/copied"
            copy_module "$name" || die "$name (a dependency) is not in $src"
        done <"$work/wanted" >"$work/deps"
        # A soft dependency may name a crypto algorithm: its generic driver
        # (crc32c -> crc32c_generic) if there is one, else nothing.
        tr - _ <"$work/deps" | sort -u | while read -r kind name; do
            if [ -n "$(module_path "$name")" ]; then
                echo "$name"
            elif [ "$kind" = soft ]; then
                [ -z "$(module_path "${name}_generic")" ] || echo "${name}_generic"
            else
                echo "$name" >>"$work/missing"
            fi
        done | sort -u | grep -vxF -f "$work/copied" >"$work/wanted" || true
        [ ! -s "$work/missing" ] || die "$(head -n 1 "$work/missing") (a dependency) is not in $src"
    done
    for f in modules.builtin modules.builtin.modinfo modules.order; do
        [ -f "$src/$f" ] && cp "$src/$f" "$dest/$f"
    done
    busybox depmod -b "$work/root" "$version"
    echo "petitlab: $(wc -l <"$work/copied") modules of $version from $src ($(du -sk "$dest" | cut -f1) KiB)"
}

mkdir -p "$work/root/usr/bin" "$work/root/usr/share/petitlab"
[ -z "$modules_from" ] || copy_modules "$modules_from"
cp "$here/petitlab-agent.sh" "$work/root/usr/bin/petitlab-agent"
cp "$here/init" "$work/root/init"
cp "$here/udhcpc.script" "$work/root/usr/share/petitlab/udhcpc.script"
chmod 755 "$work/root/usr/bin/petitlab-agent" "$work/root/init" "$work/root/usr/share/petitlab/udhcpc.script"
(cd "$work/root" && find . | busybox cpio -o -H newc 2>/dev/null) | gzip >"$work/agent.cpio.gz"

# Written next to OUT, then renamed: OUT is never half-written.
cat "$in" "$work/agent.cpio.gz" >"$out.tmp.$$"
mv "$out.tmp.$$" "$out"
echo "$out: $(wc -c <"$in") bytes of $in + $(wc -c <"$work/agent.cpio.gz") bytes of petitlab agent"
