#!/usr/bin/env bash
# Installs what the real-petitboot guests need to be built and run, from
# Debian's packages only: QEMU 10 from bookworm-backports (pinned low, so
# nothing else upgrades from it), the ppc64le cross compiler, ppc64el -dev
# packages through multiarch, and the autotools petitboot's bootstrap runs.
# Idempotent: does nothing when everything is there. Run as root.
set -euo pipefail

codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
backports=$codename-backports

HOST_PKGS=(autoconf automake autopoint libtool pkg-config flex bison gettext make gcc
    libudev-dev libelf-dev libdw-dev libdevmapper-dev
    gcc-powerpc64le-linux-gnu libc6-dev-ppc64el-cross
    e2fsprogs fdisk kmod binutils cpio xz-utils zstd gzip file)
PPC_PKGS=(libudev-dev:ppc64el libelf-dev:ppc64el libdw-dev:ppc64el libdevmapper-dev:ppc64el)
QEMU_PKGS=(qemu-system-ppc qemu-system-x86 qemu-system-data)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }
qemu_is_10() {
    command -v qemu-system-ppc64 >/dev/null && command -v qemu-system-x86_64 >/dev/null &&
        qemu-system-ppc64 --version | grep -qE 'version (1[0-9])\.'
}

missing=()
for p in "${HOST_PKGS[@]}" "${PPC_PKGS[@]}"; do installed "$p" || missing+=("$p"); done
if [ "${#missing[@]}" -eq 0 ] && qemu_is_10; then
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
if ! dpkg --print-foreign-architectures | grep -qx ppc64el; then
    dpkg --add-architecture ppc64el
fi
list=/etc/apt/sources.list.d/petitlab-backports.sources
if [ "$codename" = bookworm ] && [ ! -e "$list" ]; then
    cat >"$list" <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: $backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    # Backports never win on their own: only what we name with -t comes from them.
    cat >/etc/apt/preferences.d/petitlab-backports <<PIN
Package: *
Pin: release n=$backports
Pin-Priority: 100
PIN
fi
apt-get update -q
apt-get install -y -q --no-install-recommends "${HOST_PKGS[@]}" "${PPC_PKGS[@]}"
if [ "$codename" = bookworm ]; then
    apt-get install -y -q --no-install-recommends -t "$backports" "${QEMU_PKGS[@]}"
else
    apt-get install -y -q --no-install-recommends "${QEMU_PKGS[@]}"
fi
qemu_is_10 || { echo "install-deps: qemu-system-ppc64 10 or later is needed: $(qemu-system-ppc64 --version | head -1)" >&2; exit 1; }
