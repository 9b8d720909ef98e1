#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Second stage of a vm-test guest, run from the host's (shared, overlaid)
# root: as PID 1 after the initramfs of vm-test/run.sh, or by vng --exec.
#   guest.sh RESULTS_DIR
# RESULTS_DIR (shared with the host, writable) holds the request: cmd (a
# shell command line), cwd and timeout (seconds).  This script mounts what
# the tests expect, loads tls, runs cmd under that timeout and leaves there
# output (its stdout and stderr), status (its exit status), timedout (if
# the timeout fired), uptime (at command start) and dmesg; then powers off.
res=${1:?usage: guest.sh RESULTS_DIR}
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb LC_ALL=C.UTF-8
umask 022

# mnt TYPE DIR [OPTIONS]: mount unless something already is (vng mounts
# most of these itself).
mnt() {
	mkdir -p "$2"
	mountpoint -q "$2" || mount -t "$1" ${3:+-o "$3"} "$1" "$2"
}

halt_guest() {
	sync
	# Under vng this is not PID 1 and vng powers the guest off itself.
	[ "$$" -eq 1 ] || exit "${1:-0}"
	busybox poweroff -f 2>/dev/null
	echo o >/proc/sysrq-trigger
	sleep 30
}

mnt proc /proc
mnt sysfs /sys
mnt devtmpfs /dev
mnt devpts /dev/pts gid=5,mode=620,ptmxmode=666
mnt tmpfs /dev/shm mode=1777
mnt tmpfs /run mode=0755
mnt bpf /sys/fs/bpf mode=0700
# The host's layout: a tmpfs on /sys/fs/cgroup holding the v2 hierarchy.
mnt tmpfs /sys/fs/cgroup mode=0755
mnt cgroup2 /sys/fs/cgroup/unified
mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
ip link set lo up
hostname sluice-vm 2>/dev/null
modprobe tls || echo "vm-test guest: modprobe tls failed" >&2

cmd=$(cat "$res/cmd") cwd=$(cat "$res/cwd") limit=$(cat "$res/timeout")
cut -d' ' -f1 /proc/uptime >"$res/uptime"
echo "vm-test guest: command starts at $(cat "$res/uptime") s after boot"
cd "$cwd" || { echo 127 >"$res/status"; halt_guest 127; }

start=$(date +%s)
timeout -k 5 "$limit" /bin/sh -c "$cmd" >"$res/output" 2>&1 </dev/null
st=$?
# 124 (or 137 after -k) is timeout's own status only if the time is up.
case "$st" in 124 | 137)
	[ $(($(date +%s) - start)) -ge "$limit" ] && : >"$res/timedout" ;;
esac
dmesg >"$res/dmesg" 2>/dev/null
echo "$st" >"$res/status.tmp" && mv "$res/status.tmp" "$res/status"
echo "vm-test guest: command exited $st"
halt_guest "$st"
