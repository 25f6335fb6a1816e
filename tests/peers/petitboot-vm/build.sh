#!/usr/bin/env bash
# build.sh ARCH OUTDIR — builds the guests the real-petitboot tests boot in QEMU.
#
# ARCH is x86_64 or ppc64le (powernv). From petitboot's source (the tarball in
# ../shared/peers/ when present, else upstream at the same commit) and Debian
# packages only (downloaded with apt-get download and unpacked, never
# installed), it writes into OUTDIR:
#   kernel             Debian's kernel: bzImage (x86_64), ELF vmlinux (ppc64le).
#                      petitboot's kernel, the deploy kernel and the instance's.
#   petitboot.initrd   the "firmware": pb-discover, udev, busybox, kexec.
#   deploy.initrd      a busybox ramdisk with petitlab's agent, made by our own
#                      agent/add-to-initramfs.sh --modules-from.
#   instance.img       a whole disk (MBR, one ext4 partition) holding
#                      /etc/kboot.conf, which petitboot boots from disk.
#   instance-part.img  that partition alone, and
#   instance.initrd    the instance's ramdisk, for boot_option = "netboot".
#   guest.env          ARCH, CONSOLE, DISK, ROOT_DEVICE, KERNEL_VERSION.
# Outputs are cached by their inputs (this directory, agent/, the petitboot
# source, and the versions of every package): a second run takes seconds.
# Needs what install-deps.sh installs. Prints progress on stderr.
set -euo pipefail

PETITBOOT_COMMIT=96063aa2d2d8795389024d05967c3f4bcbbf9aab
PETITBOOT_URL=https://github.com/open-power/petitboot

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)

[ $# -eq 2 ] || { echo "usage: $0 x86_64|ppc64le OUTDIR" >&2; exit 2; }
arch=$1
out=$2
case $arch in
x86_64)
    debarch=amd64 host= console=ttyS0 kernel_flavour=amd64
    # petitboot's firmware ramdisk: NIC, disk and filesystem drivers.
    pb_modules="virtio_pci virtio_net virtio_blk ext4 crc32c_generic"
    # Debian's amd64 kexec links libxenctrl (kexec into Xen) and its family.
    arch_pkgs="libxenmisc4.17 libxencall1 libxendevicemodel1 libxenevtchn1 libxenforeignmemory1
        libxengnttab1 libxenhypfs1 libxenstore4 libxentoolcore1 libxentoollog1 libyajl2
        libext2fs2 libuuid1"
    ;;
ppc64le)
    debarch=ppc64el host=powerpc64le-linux-gnu console=hvc0 kernel_flavour=powerpc64le
    # ipmi_powernv + ipmi_devintf: /dev/ipmi0, petitboot's in-band IPMI
    # through OPAL (the boot override and its clearing).
    pb_modules="virtio_pci virtio_net virtio_blk ext4 crc32c_generic ipmi_powernv ipmi_devintf"
    arch_pkgs=
    ;;
*) echo "$0: unknown arch '$arch' (x86_64 or ppc64le)" >&2; exit 2 ;;
esac

say() { echo "petitboot-vm[$arch] ${SECONDS}s: $*" >&2; }
die() { echo "petitboot-vm[$arch]: $*" >&2; exit 1; }

mkdir -p "$out"
out=$(cd "$out" && pwd)
cache=$(dirname "$out")
debs=$cache/debs
mkdir -p "$debs"
# Tests of one run may ask for the same guest at once: one builds, the
# others wait and then find it cached.
exec 9>"$cache/.lock-$arch"
flock 9

# Libraries and programs from Debian, for the guest's architecture. The
# closure of their NEEDED entries is checked below: a missing one fails the
# build naming the library. ncurses: where the host has its -dev package
# (x86), configure finds plain curses despite --without-ncurses and builds
# petitboot's UI, which then needs its libraries (it is not run).
GUEST_PKGS="libc6 libgcc-s1 busybox-static udev libudev1 libkmod2 libacl1 libblkid1 libcap2
libselinux1 libpcre2-8-0 liblzma5 libzstd1 libssl3 zlib1g libbz2-1.0 libelf1 libdw1
libdevmapper1.02.1 kexec-tools libncursesw6 libncurses6 libtinfo6 libcom-err2 $arch_pkgs"

command -v apt-get >/dev/null || die "needs apt-get (a Debian machine)"
kernel_pkg=$(apt-cache depends "linux-image-$kernel_flavour:$debarch" 2>/dev/null |
    awk '/Depends: linux-image-/ { sub(/:.*$/, "", $2); print $2; exit }')
[ -n "$kernel_pkg" ] || die "cannot resolve linux-image-$kernel_flavour:$debarch (apt-get update? dpkg --add-architecture $debarch?)"
kernel_version=${kernel_pkg#linux-image-}

# The versions apt would download (one apt-cache run): part of the cache key.
pkgs="$GUEST_PKGS $kernel_pkg"
versions=$(apt-cache show --no-all-versions $(for p in $pkgs; do echo "$p:$debarch"; done) 2>/dev/null |
    awk '/^Package:/ { p = $2 } /^Version:/ { print p "=" $2 }')
for p in $pkgs; do
    echo "$versions" | grep -q "^$p=" || die "no Debian package $p:$debarch (run install-deps.sh)"
done

tarball=$repo/../shared/peers/petitboot-${PETITBOOT_COMMIT:0:8}.tar.gz
source_id=$PETITBOOT_COMMIT
[ -f "$tarball" ] && source_id=$(sha256sum <"$tarball")
key=$( {
    echo "$arch $source_id"
    echo "$versions"
    cd "$repo" && cat tests/peers/petitboot-vm/*.sh tests/peers/petitboot-vm/guest/* agent/*
} | sha256sum | cut -c1-16)

if [ -f "$out/.key" ] && [ "$(cat "$out/.key")" = "$key" ]; then
    say "cached ($key): $out"
    exit 0
fi
say "building into $out (inputs $key)"
rm -f "$out/.key"

work=$cache/work-$arch
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT

# --- Debian packages, downloaded once into the shared cache ---------------
deb_path() { # deb_path PKG: the cached .deb of the version apt would take.
    v=$(echo "$versions" | awk -F= -v p="$1" '$1 == p { print $2 }')
    echo "$debs/${1}_${v/:/%3a}_$debarch.deb"
}
fetch() { # fetch PKG...: downloads the missing .debs in one apt-get run.
    want=()
    for p in "$@"; do [ -f "$(deb_path "$p")" ] || want+=("$p:$debarch"); done
    [ "${#want[@]}" -eq 0 ] && return 0
    (cd "$debs" && apt-get download -q "${want[@]}" >/dev/null 2>"$work/apt.err") ||
        die "apt-get download ${want[*]} failed: $(cat "$work/apt.err")"
    for p in "$@"; do [ -f "$(deb_path "$p")" ] || die "apt-get download left no $(deb_path "$p")"; done
}

say "packages: $(echo $GUEST_PKGS | wc -w) + $kernel_pkg"
sysroot=$work/sysroot
mkdir -p "$sysroot"
fetch $GUEST_PKGS "$kernel_pkg"
for p in $GUEST_PKGS; do dpkg-deb -x "$(deb_path "$p")" "$sysroot"; done
bbv=$(apt-cache show --no-all-versions busybox-static:amd64 | awk '/^Version:/ { print $2; exit }')
[ "$bbv" = "$(echo "$versions" | awk -F= '$1 == "busybox-static" { print $2 }')" ] ||
    die "busybox-static:amd64 ($bbv) and :$debarch differ in version: the applet list would not match"
bbdeb=$(ls "$debs/busybox-static_${bbv/:/%3a}_amd64.deb" 2>/dev/null || true)
if [ -z "$bbdeb" ]; then
    (cd "$debs" && apt-get download -q busybox-static:amd64 >/dev/null 2>"$work/apt.err") ||
        die "apt-get download busybox-static:amd64 failed: $(cat "$work/apt.err")"
    bbdeb=$(ls "$debs/busybox-static_${bbv/:/%3a}_amd64.deb")
fi
mkdir -p "$work/bb-amd64"
dpkg-deb -x "$bbdeb" "$work/bb-amd64"
applets=$("$work/bb-amd64/bin/busybox" --list-full | grep -v '^bin/busybox$')
[ -n "$applets" ] || die "busybox --list-full printed nothing"
kroot=$work/kernel-pkg
mkdir -p "$kroot"
dpkg-deb -x "$(deb_path "$kernel_pkg")" "$kroot"
moddir=$kroot/lib/modules/$kernel_version
[ -d "$moddir" ] || die "$kernel_pkg has no lib/modules/$kernel_version"
# The .deb carries no modules.dep: index the unpacked tree.
depmod -b "$kroot" "$kernel_version"
case $arch in
x86_64) cp "$kroot/boot/vmlinuz-$kernel_version" "$work/kernel" ;;
ppc64le) cp "$kroot/boot/vmlinux-$kernel_version" "$work/kernel" ;;
esac

# --- petitboot, built (cross-built for ppc64le) from the pinned source ----
# Cached on its own (by source, arch and the build commands below), so a
# change to the ramdisks does not rebuild it.
pb_key=$( { echo "$arch $source_id"; sed -n '/^# --- petitboot, built/,/^# --- helpers/p' "$0"; } | sha256sum | cut -c1-16)
pb_install=$cache/petitboot-$arch-$pb_key
if [ ! -f "$pb_install/.done" ]; then
    src=$work/petitboot
    mkdir -p "$src"
    if [ -f "$tarball" ]; then
        tar xzf "$tarball" -C "$src" --strip-components=1
    else
        say "no $tarball: cloning $PETITBOOT_URL at $PETITBOOT_COMMIT"
        git clone -q "$PETITBOOT_URL" "$src"
        git -C "$src" checkout -q "$PETITBOOT_COMMIT"
    fi
    say "building petitboot ${PETITBOOT_COMMIT:0:8}"
    rm -rf "$pb_install"
    (
        cd "$src"
        export PETITBOOT_VERSION=$PETITBOOT_COMMIT
        ./bootstrap >"$work/bootstrap.log" 2>&1 || { tail -20 "$work/bootstrap.log"; exit 1; }
        cross=()
        if [ -n "$host" ]; then
            # The ppc64el -dev packages (multiarch) are found through
            # pkg-config's and the cross compiler's default paths.
            cross=(--host="$host" PKG_CONFIG_LIBDIR="/usr/lib/$host/pkgconfig:/usr/share/pkgconfig")
        fi
        ./configure --prefix=/usr --sysconfdir=/etc --localstatedir=/var \
            --without-twin-x11 --without-twin-fbdev --without-fdt --without-ncurses --without-ncursesw \
            --disable-nls --with-tftp=busybox HOST_PROG_SHUTDOWN=/sbin/pb-shutdown \
            "${cross[@]}" >"$work/configure.log" 2>&1 || { tail -30 "$work/configure.log"; exit 1; }
        make -j"$(nproc)" >"$work/make.log" 2>&1 || { tail -30 "$work/make.log"; exit 1; }
        make install DESTDIR="$pb_install" >"$work/install.log" 2>&1 || { tail -30 "$work/install.log"; exit 1; }
    ) || die "petitboot did not build (logs above)"
    touch "$pb_install/.done"
fi

# --- helpers for the ramdisks ---------------------------------------------
# copy_modules ROOT MODULE...: the modules and what they depend on, in load
# order, decompressed into ROOT/lib/modules/VERSION, listed in
# ROOT/etc/modules.load for the init to insmod (no depmod in the guest).
copy_modules() {
    root=$1
    shift
    mkdir -p "$root/lib/modules/$kernel_version" "$root/etc"
    : >"$root/etc/modules.load"
    for m in "$@"; do
        deps=$(modprobe -d "$kroot" -S "$kernel_version" --show-depends "$m" 2>&1) ||
            die "module $m: $deps"
        echo "$deps" | awk '$1 == "insmod" { print $2 }' | while read -r ko; do
            name=$(basename "$ko")
            plain=${name%.xz}
            plain=${plain%.zst}
            plain=${plain%.gz}
            grep -qx "$plain" "$root/etc/modules.load" && continue
            case $name in
            *.xz) xz -dc "$ko" ;;
            *.zst) zstd -qdc "$ko" ;;
            *.gz) gzip -dc "$ko" ;;
            *) cat "$ko" ;;
            esac >"$root/lib/modules/$kernel_version/$plain"
            echo "$plain" >>"$root/etc/modules.load"
        done
    done
}

# busybox ROOT: busybox-static and a link for each of its applets. The
# applet list comes from the amd64 build of the same busybox-static version
# (same Debian config), which runs here whatever the guest's architecture.
busybox_into() {
    root=$1
    cp "$sysroot/bin/busybox" "$root/bin/busybox" 2>/dev/null || {
        mkdir -p "$root/bin"
        cp "$sysroot/bin/busybox" "$root/bin/busybox"
    }
    for path in $applets; do
        mkdir -p "$root/$(dirname "$path")"
        [ -e "$root/$path" ] || ln -s /bin/busybox "$root/$path"
    done
}
# pack ROOT FILE: a gzip'ed newc cpio of ROOT.
pack() {
    (cd "$1" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --owner=0:0 --quiet) | gzip -9 >"$2"
}

# ELF files in ROOT whose NEEDED libraries are not in ROOT: printed.
unresolved() {
    root=$1
    find "$root" -type f -perm -u+x -o -type f -name '*.so*' | while read -r f; do
        file -b "$f" | grep -q '^ELF' || continue
        readelf -d "$f" 2>/dev/null | awk -F'[][]' '/NEEDED/ { print $2 }'
    done | sort -u | while read -r lib; do
        [ -n "$(find "$root/lib" "$root/usr/lib" "$root/lib64" -name "$lib" 2>/dev/null | head -1)" ] ||
            echo "$lib"
    done
}

# --- petitboot's firmware ramdisk -----------------------------------------
say "petitboot ramdisk"
pb=$work/pb-root
mkdir -p "$pb"/{dev,proc,sys,tmp,run,var/log/petitboot,etc/udhcpc,usr/share/udhcpc,lib,usr/lib,root,mnt}
busybox_into "$pb"
# Debian's libraries, udev (udevadm is systemd-udevd), kexec.
for d in lib lib64 usr/lib; do
    [ -d "$sysroot/$d" ] && cp -a "$sysroot/$d/." "$pb/$d/"
done
# usrmerge-style links some libraries' paths assume.
cp -a "$sysroot/bin/udevadm" "$pb/bin/udevadm"
mkdir -p "$pb/lib/systemd"
ln -sf /bin/udevadm "$pb/lib/systemd/systemd-udevd"
cp -a "$sysroot/sbin/kexec" "$pb/sbin/kexec"
find "$pb" -name gconv -prune -exec rm -rf {} +
rm -rf "$pb/lib/udev/hwdb.d" \
    "$pb/lib/systemd/system" "$pb/lib/systemd/network"
cp -a "$pb_install/." "$pb/"
rm -f "$pb/.done"
rm -rf "$pb/usr/share/man" "$pb/usr/share/doc" "$pb/usr/share/locale" "$pb/usr/include"
find "$pb/usr/lib" -name '*.a' -delete -o -name '*.la' -delete
copy_modules "$pb" $pb_modules
install -m 0755 "$here/guest/petitboot-init" "$pb/init"
install -m 0755 "$here/guest/pb-shutdown" "$pb/sbin/pb-shutdown"
# petitboot runs udhcpc without -s: busybox looks for its default script.
install -m 0755 "$here/guest/udhcpc.script" "$pb/usr/share/udhcpc/default.script"
install -m 0755 "$here/guest/udhcpc.script" "$pb/etc/udhcpc/default.script"
echo "root:x:0:0:root:/root:/bin/sh" >"$pb/etc/passwd"
echo "root:x:0:" >"$pb/etc/group"
missing=$(unresolved "$pb")
[ -z "$missing" ] || die "the petitboot ramdisk lacks libraries: $(echo $missing) (add their packages to GUEST_PKGS)"
pack "$pb" "$work/petitboot.initrd"

# --- the deploy ramdisk: busybox + our agent, made by our own script ------
say "deploy ramdisk (agent/add-to-initramfs.sh)"
dr=$work/deploy-root
mkdir -p "$dr"/{dev,proc,sys,tmp}
busybox_into "$dr"
pack "$dr" "$work/deploy-base.initrd"
"$repo/agent/add-to-initramfs.sh" --modules-from "$moddir" "$work/deploy-base.initrd" "$work/deploy.initrd" >"$work/agent.log" 2>&1 ||
    die "add-to-initramfs.sh failed: $(cat "$work/agent.log")"

# --- the instance: its ramdisk, its partition, its whole disk -------------
say "instance ramdisk and disk"
ir=$work/instance-root
mkdir -p "$ir"/{dev,proc,sys,tmp,etc}
busybox_into "$ir"
install -m 0755 "$here/guest/instance-init" "$ir/init"
pack "$ir" "$work/instance.initrd"

part=$work/part
mkdir -p "$part/boot" "$part/etc"
cp "$work/kernel" "$part/boot/vmlinuz"
cp "$work/instance.initrd" "$part/boot/initrd.img"
cat >"$part/etc/kboot.conf" <<EOF
default=instance
instance='/boot/vmlinuz initrd=/boot/initrd.img console=$console root=/dev/vda1 petitlab.instance=disk'
EOF
part_mib=$(( $(du -sm "$part" | cut -f1) + 16 ))
rm -f "$work/instance-part.img"
mke2fs -q -F -t ext4 -L instance -d "$part" -E root_owner=0:0 "$work/instance-part.img" "${part_mib}M" >/dev/null
# The whole disk: an MBR, the partition at 1 MiB.
disk=$work/instance.img
truncate -s $(( (part_mib + 1) * 1024 * 1024 )) "$disk"
echo "start=2048, type=83, bootable" | sfdisk -q "$disk"
dd if="$work/instance-part.img" of="$disk" bs=1M seek=1 conv=notrunc status=none

cat >"$work/guest.env" <<EOF
ARCH=$arch
CONSOLE=$console
DISK=/dev/vda
ROOT_DEVICE=/dev/vda1
KERNEL_VERSION=$kernel_version
EOF

for f in kernel petitboot.initrd deploy.initrd instance.img instance-part.img instance.initrd guest.env; do
    mv -f "$work/$f" "$out/$f"
done
echo "$key" >"$out/.key"
say "done: $out ($(du -sh "$out" | cut -f1))"
