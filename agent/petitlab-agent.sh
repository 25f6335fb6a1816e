#!/bin/sh
# petitlab deploy agent: runs in a deploy ramdisk (busybox), writes the
# instance image petitlab serves onto the node's disk and reports back.
# Protocol: docs/agent-api.md. Needs busybox wget, sha256sum, head, sed.
#
# Kernel command line (petitlab writes the first two into the deploy config):
#   petitlab.api=http://SERVER:PORT/v1/  petitlab.token=HEX
#   petitlab.disk=/dev/sda   (optional; add it to the node's kernel_args)
# For testing outside a ramdisk: PETITLAB_CMDLINE (a file to read instead of
# /proc/cmdline), PETITLAB_MACS (space-separated), PETITLAB_DISK.
set -u

CMDLINE=${PETITLAB_CMDLINE:-/proc/cmdline}

say() { echo "petitlab-agent: $*"; }
die() { say "$*"; exit 1; }

# The value of KEY=VALUE on the kernel command line.
arg() {
    for word in $(cat "$CMDLINE"); do
        case $word in "$1="*) echo "${word#*=}"; return 0 ;; esac
    done
    return 1
}

API=$(arg petitlab.api) || die "no petitlab.api= on the kernel command line"
TOKEN=$(arg petitlab.token) || die "no petitlab.token= on the kernel command line"
DISK=${PETITLAB_DISK:-$(arg petitlab.disk || echo /dev/sda)}

macs() {
    if [ -n "${PETITLAB_MACS:-}" ]; then
        echo "$PETITLAB_MACS"
        return
    fi
    for f in /sys/class/net/*/address; do
        mac=$(cat "$f")
        [ "$mac" = 00:00:00:00:00:00 ] || echo "$mac"
    done
}

# call NAME BODY: POST to the API with the token; prints the reply.
call() {
    wget -q -O - --header "X-Petitlab-Token: $TOKEN" --post-data "$2" "${API}$1"
}

field() { echo "$REPLY" | sed -n "s/^$1=//p"; }

body=$(for m in $(macs); do printf 'mac=%s\n' "$m"; done)
[ -n "$body" ] || die "no network interface with a MAC address"
REPLY=$(call lookup "$body") || die "lookup refused by $API (wrong token, or no deploy in progress)"
NODE=$(field node)
URL=$(field image_url)
SIZE=$(field image_size)
SUM=$(field image_sha256)
NAME=$(field image_name)
BEAT=$(field heartbeat)
[ -n "$NODE" ] && [ -n "$URL" ] && [ -n "$SIZE" ] && [ -n "$SUM" ] || die "lookup reply incomplete: $REPLY"

failed() {
    call failed "$(printf 'node=%s\nreason=%s' "$NODE" "$*")" >/dev/null
    die "$*"
}

say "deploying $NODE: writing $NAME ($SIZE bytes) to $DISK"
wget -q -O "$DISK" "$URL" &
WGET=$!
# Progress (bytes the download wrote so far) doubles as the heartbeat:
# checked every second, reported every heartbeat interval.
tick=0
while kill -0 "$WGET" 2>/dev/null; do
    if [ $((tick % ${BEAT:-10})) -eq 0 ]; then
        written=$(sed -n 's/^wchar: //p' "/proc/$WGET/io" 2>/dev/null)
        call progress "$(printf 'node=%s\nwritten=%s\ntotal=%s' "$NODE" "${written:-0}" "$SIZE")" >/dev/null
    fi
    tick=$((tick + 1))
    sleep 1
done
wait "$WGET" || failed "downloading $URL to $DISK failed"
sync
call progress "$(printf 'node=%s\nwritten=%s\ntotal=%s' "$NODE" "$SIZE" "$SIZE")" >/dev/null

# Read back what is on the disk, not what was downloaded.
got=$(head -c "$SIZE" "$DISK" | sha256sum | sed 's/ .*//')
[ "$got" = "$SUM" ] || failed "checksum mismatch: $DISK has $got, the image is $SUM"
call done "$(printf 'node=%s\nsha256=%s' "$NODE" "$got")" >/dev/null || die "done refused by $API"
say "done (sha256 $got); waiting for petitlab to reboot this node"
