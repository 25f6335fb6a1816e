#!/bin/bash
# ipmi_sim's chassis_control hook for the real-petitboot rig
# (tests/support/petitboot_rig.rs): the BMC's power is a QEMU process.
#
#   chassis.sh RIGDIR get power|boot...     prints power:0|1, boot:<device>
#   chassis.sh RIGDIR set power 1|0         starts QEMU / stops it
#   chassis.sh RIGDIR set reset 1           stops QEMU (if running) and starts it
#   chassis.sh RIGDIR set shutdown 1        soft off: stops QEMU, as power 0
#   chassis.sh RIGDIR set boot <device>     remembers the boot device
#
# RIGDIR holds qemu.argv (QEMU's command line, one argument per line, written
# by the rig), and this script's files: qemu.pid ("PID STARTTIME" of the QEMU
# it started), qemu.out (QEMU's stdout and stderr, every boot appended),
# boot, and calls.log (one "EPOCHREALTIME ARGS" line per call, for the tests'
# assertions). ipmi_sim runs this synchronously and stops answering anything
# until it returns, so it uses builtins except for the short sleeps while a
# QEMU exits.
set -u
cd "$1" || exit 1
shift
printf '%s %s\n' "$EPOCHREALTIME" "$*" >>calls.log

# The recorded QEMU runs: its pid exists, is not a zombie (nobody may reap
# it: its parent, this script, is gone), and started when recorded (a pid
# reused by another process has another start time). Sets $pid.
alive() {
    local start line rest
    pid=
    read -r pid start 2>/dev/null <qemu.pid || return 1
    [ -n "$pid" ] || return 1
    read -r line 2>/dev/null <"/proc/$pid/stat" || return 1
    # Field 2 (comm) is in parentheses and may contain spaces: cut after it.
    rest=${line##*) }
    # shellcheck disable=SC2086 # split into fields 3.. on purpose
    set -- $rest
    # $1 is field 3 (state), ${20} field 22 (start time in clock ticks).
    [ "$1" != Z ] && [ "$1" != X ] && [ "${20}" = "$start" ]
}

start_time() {
    local line rest
    read -r line 2>/dev/null <"/proc/$1/stat" || return 1
    rest=${line##*) }
    # shellcheck disable=SC2086
    set -- $rest
    printf '%s' "${20}"
}

start() {
    local argv st
    alive && return 0
    mapfile -t argv <qemu.argv
    printf '=== power on at %s\n' "$EPOCHREALTIME" >>qemu.out
    (
        # QEMU must keep none of ipmi_sim's descriptors (its LAN and SOL
        # sockets, the pipe it reads this script's answer from: an inherited
        # write end would make ipmi_sim wait for QEMU to exit).
        for fd in /proc/$BASHPID/fd/*; do
            fd=${fd##*/}
            [ "$fd" -gt 2 ] && eval "exec $fd>&-"
        done
        # Its own session: no signal meant for ipmi_sim's group reaches it.
        # A background subshell is not a group leader, so setsid does not
        # fork and QEMU keeps this pid.
        exec setsid "${argv[@]}" </dev/null >>qemu.out 2>&1
    ) &
    pid=$!
    st=$(start_time "$pid") || st=gone
    printf '%s %s\n' "$pid" "$st" >qemu.pid
}

# SIGTERM (QEMU exits at once), then wait until it is gone: the tap is not
# multi-queue, so the next QEMU cannot open it while this one lives.
stop() {
    local i
    alive || return 0
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 200; i++)); do
        alive || break
        sleep 0.05
    done
    if alive; then
        kill -KILL "$pid" 2>/dev/null
        for ((i = 0; i < 100; i++)); do
            alive || break
            sleep 0.05
        done
    fi
    printf '=== power off at %s\n' "$EPOCHREALTIME" >>qemu.out
    : >qemu.pid
}

case "${1:-}" in
get)
    shift
    for key in "$@"; do
        case "$key" in
        power) if alive; then echo power:1; else echo power:0; fi ;;
        boot)
            b=none
            read -r b 2>/dev/null <boot
            echo "boot:${b:-none}"
            ;;
        esac
    done
    ;;
set)
    case "${2:-} ${3:-}" in
    "power 1") start ;;
    "power 0" | "shutdown 1") stop ;;
    "reset 1")
        stop
        start
        ;;
    boot\ *) printf '%s\n' "$3" >boot ;;
    esac
    ;;
esac
exit 0
