#!/bin/sh
# petitlab deploy agent: runs in a deploy ramdisk (busybox), writes the
# instance image petitlab serves onto the node's disk and reports back; or,
# for a node with deploy_interface = "iscsi", exports the disk as an iSCSI
# target (tgtd + tgtadm) for petitlab to write, then checks it.
# Protocol: docs/agent-api.md. Needs busybox wget, sha256sum, head, sed
# (and for iSCSI: ip, tr, tgtd, tgtadm).
#
# Kernel command line (petitlab writes the first two into the deploy config):
#   petitlab.api=http://SERVER:PORT/v1/  petitlab.token=HEX
#   petitlab.disk=/dev/sda   (optional; add it to the node's kernel_args)
#   petitlab.iscsi_port=3260 (optional: the port the iSCSI target listens on)
# For testing outside a ramdisk: PETITLAB_CMDLINE (a file to read instead of
# /proc/cmdline), PETITLAB_MACS (space-separated), PETITLAB_DISK,
# PETITLAB_DISK_WAIT (seconds the disk may take to appear, default 30),
# PETITLAB_ISCSI_PORT, PETITLAB_TGTD_CONTROL (tgtd's control id, below 32768).
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
DISK_WAIT=${PETITLAB_DISK_WAIT:-30}

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
IFACE=$(field deploy_interface)
URL=$(field image_url)
SIZE=$(field image_size)
SUM=$(field image_sha256)
NAME=$(field image_name)
BEAT=$(field heartbeat)
[ -n "$NODE" ] && [ -n "$SIZE" ] && [ -n "$SUM" ] || die "lookup reply incomplete: $REPLY"

failed() {
    call failed "$(printf 'node=%s\nreason=%s' "$NODE" "$*")" >/dev/null
    die "$*"
}

# A disk whose driver is a module may appear after the network is up (a
# SAS HBA's scan); one that never does must not become a file in /dev that
# the image is written to.
wait_disk() {
    waited=0
    until [ -e "$DISK" ]; do
        [ "$waited" -ge "$DISK_WAIT" ] &&
            failed "no disk $DISK after $waited s (its driver not in the ramdisk? petitlab.disk= names the disk)"
        [ "$waited" -eq 0 ] && say "waiting for $DISK to appear"
        sleep 1
        waited=$((waited + 1))
    done
}

# iSCSI: export the disk, say where, heartbeat until petitlab has written it.
iscsi_export() {
    port=${PETITLAB_ISCSI_PORT:-$(arg petitlab.iscsi_port || echo 3260)}
    control=${PETITLAB_TGTD_CONTROL:-0}
    iqn="iqn.2026-11.org.petitlab.agent:$(echo "$NODE" | tr 'A-Z_ ' 'a-z--')"
    # The address petitlab reaches us on: our source address towards it.
    server=${API#*://}
    server=${server%%[:/]*}
    addr=$(ip route get "$server" | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -n 1)
    [ -n "$addr" ] || failed "no route to $server for the iSCSI portal"
    adm() { tgtadm -C "$control" --lld iscsi "$@"; }
    tgtd -f -C "$control" --iscsi "portal=$addr:$port" >/tmp/petitlab-tgtd.log 2>&1 &
    TGTD=$!
    trap 'kill -9 "$TGTD" 2>/dev/null' EXIT
    tries=0
    until adm --op show --mode target >/dev/null 2>&1; do
        tries=$((tries + 1))
        [ "$tries" -lt 50 ] && kill -0 "$TGTD" 2>/dev/null || failed "tgtd did not start: $(cat /tmp/petitlab-tgtd.log)"
        sleep 1
    done
    adm --op new --mode target --tid 1 -T "$iqn" &&
        adm --op new --mode logicalunit --tid 1 --lun 1 -b "$DISK" &&
        adm --op bind --mode target --tid 1 -I ALL || failed "tgtadm could not export $DISK"
    say "exporting $DISK as iSCSI target $iqn LUN 1 on $addr:$port"
    call iscsi "$(printf 'node=%s\ntarget=%s\nportal=%s\nlun=1' "$NODE" "$iqn" "$addr:$port")" >/dev/null ||
        failed "petitlab refused the iSCSI target"
    while :; do
        REPLY=$(call heartbeat "node=$NODE") || die "heartbeat refused by $API (the deploy ended)"
        [ "$(field iscsi)" = written ] && break
        sleep 1
    done
    adm --op delete --force --mode target --tid 1
    kill -9 "$TGTD" 2>/dev/null
    say "petitlab wrote the image; target $iqn removed"
}

# Agent: download the image straight onto the disk.
agent_download() {
    [ -n "$URL" ] || die "lookup reply has no image_url: $REPLY"
    say "deploying $NODE: writing $NAME ($SIZE bytes) to $DISK"
    wget -q -O "$DISK" "$URL" &
    WGET=$!
    # Progress (bytes the download wrote so far) doubles as the heartbeat:
    # checked every second, reported every heartbeat interval.
    tick=0
    while kill -0 "$WGET" 2>/dev/null; do
        if [ $((tick % ${BEAT:-10})) -eq 0 ]; then
            written=$(sed -n 's/^wchar: //p' "/proc/$WGET/io" 2>/dev/null)
            # wchar also counts wget's request: never report more than the image.
            [ "${written:-0}" -gt "$SIZE" ] && written=$SIZE
            call progress "$(printf 'node=%s\nwritten=%s\ntotal=%s' "$NODE" "${written:-0}" "$SIZE")" >/dev/null
        fi
        tick=$((tick + 1))
        sleep 1
    done
    wait "$WGET" || failed "downloading $URL to $DISK failed"
    sync
    call progress "$(printf 'node=%s\nwritten=%s\ntotal=%s' "$NODE" "$SIZE" "$SIZE")" >/dev/null
}

wait_disk
if [ "$IFACE" = iscsi ]; then
    say "deploying $NODE: petitlab writes $NAME ($SIZE bytes) to $DISK over iSCSI"
    iscsi_export
else
    agent_download
fi
sync

# Read back what is on the disk, not what was downloaded.
got=$(head -c "$SIZE" "$DISK" | sha256sum | sed 's/ .*//')
[ "$got" = "$SUM" ] || failed "checksum mismatch: $DISK has $got, the image is $SUM"
call done "$(printf 'node=%s\nsha256=%s' "$NODE" "$got")" >/dev/null || die "done refused by $API"
say "done (sha256 $got); waiting for petitlab to reboot this node"
