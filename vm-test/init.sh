#!/bin/busybox sh
# shellcheck shell=dash disable=SC2013
# SPDX-License-Identifier: Apache-2.0
# /init of the vm-test initramfs (busybox only; built by vm-test/run.sh).
# Loads the modules of /modules/order, mounts the host's root (9p tag
# "hostroot", read-only) under a tmpfs overlay at /newroot, mounts the
# results share (9p tag "results", writable) at /newroot/vmresults and
# switches to the second stage named on the kernel command line
# (sluice_guest=PATH, run as PID 1 with /bin/sh from the host's root).
/bin/busybox --install -s /bin
export PATH=/bin

fail() {
	echo "vm-test init: $*" >&2
	echo o >/proc/sysrq-trigger
	sleep 30
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r m; do
	insmod "/modules/$m" || fail "insmod $m failed"
done </modules/order

guest=
for a in $(cat /proc/cmdline); do
	case "$a" in sluice_guest=*) guest=${a#sluice_guest=} ;; esac
done
[ -n "$guest" ] || fail "no sluice_guest= on the kernel command line"

mkdir -p /lower /rw /newroot
# cache=loose: the lower layer is read-only and does not change during a
# run, and under TCG every 9p round trip costs.
mount -t 9p -o ro,trans=virtio,version=9p2000.L,msize=262144,cache=loose hostroot /lower ||
	fail "mount of the host root (9p hostroot) failed"
mount -t tmpfs -o mode=0755 tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot ||
	fail "overlay mount failed"
mkdir -p /newroot/vmresults
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 results /newroot/vmresults ||
	fail "mount of the results share (9p results) failed"
[ -r "/newroot$guest" ] || fail "second stage $guest not found on the host root"

umount /proc /sys /dev
exec switch_root /newroot /bin/sh "$guest" /vmresults
