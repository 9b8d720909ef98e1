#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs a command inside a QEMU guest booted with Debian's distribution
# kernel (linux-image-amd64) and exits with the command's exit status.
#
#   vm-test/run.sh [--timeout SEC] [--mem MB] -- COMMAND...
#
# COMMAND is one shell command line (the words are joined with spaces),
# run as root by /bin/sh -c in the repository root.  The guest's root is
# the host's root, shared read-only over 9p under a tmpfs overlay, so
# every path is the same as on the host and nothing the guest writes
# reaches the host (its /tmp included: a checkout under /tmp is visible
# in the guest too).  The guest mounts proc, sysfs, devtmpfs, bpffs
# on /sys/fs/bpf and cgroup2 on /sys/fs/cgroup/unified, brings lo up and
# loads tls (vm-test/guest.sh).
#
# --timeout bounds the whole run, boot included (default 120 s); the
# command gets all but a margin for boot and power-off.  Fails (status 1)
# when the guest does not finish in time, when the command's status never
# comes back, or when the kernel logs BUG:, WARNING:, Oops or Kernel panic,
# even if the command succeeded.  The command's output is printed.
#
# Uses vng (virtme-ng) if it is installed (VM_TEST_RUNNER=own forces the
# runner below).  Otherwise: qemu-system-x86_64 under TCG (never KVM),
# with an initramfs of busybox-static and the modules for a 9p root,
# cached in build/vm/.  VM_KERNEL=/boot/vmlinuz-... picks the kernel
# (default: the newest /boot/vmlinuz-*-amd64 with its modules installed).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
total=120 mem=1024

usage() {
	echo "usage: vm-test/run.sh [--timeout SEC] [--mem MB] -- COMMAND..." >&2
	exit 2
}
die() {
	echo "vm-test: $*" >&2
	exit 1
}

while [ $# -gt 0 ]; do
	case "$1" in
	--timeout) [ $# -ge 2 ] || usage; total=$2; shift 2 ;;
	--timeout=*) total=${1#*=}; shift ;;
	--mem) [ $# -ge 2 ] || usage; mem=$2; shift 2 ;;
	--mem=*) mem=${1#*=}; shift ;;
	--) shift; break ;;
	*) usage ;;
	esac
done
[ $# -gt 0 ] || usage
case "$total$mem" in *[!0-9]*) usage ;; esac
[ "$total" -ge 20 ] || die "--timeout must be at least 20 s (boot alone takes about 5 s)"
cmd="$*"
# The command gets the total less a margin for boot and power-off.
margin=30
[ "$total" -ge 60 ] || margin=$((total / 2))
limit=$((total - margin))

# ---- the kernel ----
kernel=${VM_KERNEL:-}
if [ -z "$kernel" ]; then
	for k in $(printf '%s\n' /boot/vmlinuz-*-amd64 | sort -V); do
		[ -f "$k" ] && [ -d "/lib/modules/${k#/boot/vmlinuz-}" ] && kernel=$k
	done
fi
[ -n "$kernel" ] ||
	die "no /boot/vmlinuz-*-amd64 with its /lib/modules (install linux-image-amd64: tools/deps.sh vm)"
[ -r "$kernel" ] || die "$kernel is not readable (vm-test runs as root)"
kver=${kernel##*/vmlinuz-}
mods=/lib/modules/$kver
[ -f "$mods/modules.dep" ] || die "$mods/modules.dep missing (reinstall the kernel package)"

# ---- temp dir, cleanup ----
# Under vng (where the results directory is seen at its host path and the
# guest has its own /tmp) the temp dir lives in build/vm instead.
cache=${VM_TEST_CACHE:-$repo/build/vm}
use_vng=
command -v vng >/dev/null 2>&1 && [ "${VM_TEST_RUNNER:-}" != own ] && use_vng=1
if [ -n "$use_vng" ]; then
	mkdir -p "$cache"
	tmp=$(mktemp -d "$cache/run.XXXXXX")
else
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/sluice-vm.XXXXXX")
fi
qpid=
# shellcheck disable=SC2317  # run by the traps
cleanup() {
	if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then
		kill -TERM "$qpid" 2>/dev/null || true
		wait "$qpid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "vm-test: interrupted" >&2; exit 130' INT
trap 'echo "vm-test: terminated" >&2; exit 143' TERM

res=$tmp/results log=$tmp/console.log
mkdir -p "$res"
printf '%s\n' "$cmd" >"$res/cmd"
printf '%s\n' "$repo" >"$res/cwd"
echo "$limit" >"$res/timeout"

tail_console() {
	echo "console tail:"
	tail -n "${1:-25}" "$log" 2>/dev/null | tr -d '\r' | sed 's/^/  | /'
}

# ---- boot ----
t0=$(date +%s.%N)
if [ -n "$use_vng" ]; then
	# virtme-ng sets up the shared root and its mounts itself; guest.sh
	# adds bpffs, cgroup2 and tls and writes straight into $res.
	timeout -k 5 "$total" vng --run "$kernel" --disable-kvm --cpus 2 --memory "${mem}M" \
		--rwdir "$res" --cwd "$repo" --exec "/bin/sh $here/guest.sh $res" \
		</dev/null >"$log" 2>&1 &
	qpid=$!
else
	for b in qemu-system-x86_64 busybox; do
		command -v "$b" >/dev/null 2>&1 || die "$b missing (tools/deps.sh vm)"
	done
	bb=$(command -v busybox)
	case "$repo$here" in *[[:space:]]*) die "the repository path must not contain spaces" ;; esac

	# The initramfs: busybox-static, init.sh as /init and the modules a
	# 9p root over virtio-pci with an overlay needs, in load order.
	# Cached by kernel version and a hash of everything that goes in.
	want="virtio_pci 9pnet_virtio 9p overlay"
	order=
	for m in $want; do
		order+=$(modprobe -S "$kver" --show-depends "$m") ||
			die "cannot resolve module $m of $kver (is kmod installed?)"
		order+=$'\n'
	done
	order=$(awk '!seen[$0]++' <<<"$order")
	key=$(cat "$here/init.sh" "$bb" <(echo "$order") | sha256sum | cut -c1-16)
	initrd=$cache/initramfs-$kver-$key.cpio
	if [ ! -s "$initrd" ]; then
		mkdir -p "$cache"
		root=$tmp/initramfs
		mkdir -p "$root"/{bin,dev,proc,sys,modules}
		cp "$bb" "$root/bin/busybox"
		ln -s busybox "$root/bin/sh"
		install -m 0755 "$here/init.sh" "$root/init"
		: >"$root/modules/order"
		while read -r verb path _; do
			[ "$verb" = insmod ] || continue
			name=${path##*/}
			case "$name" in
			*.ko.xz) xz -dc "$path" >"$root/modules/${name%.xz}"; name=${name%.xz} ;;
			*.ko.zst) zstd -qdc "$path" >"$root/modules/${name%.zst}"; name=${name%.zst} ;;
			*.ko.gz) gzip -dc "$path" >"$root/modules/${name%.gz}"; name=${name%.gz} ;;
			*) cp "$path" "$root/modules/$name" ;;
			esac
			echo "$name" >>"$root/modules/order"
		done <<<"$order"
		(cd "$root" && find . | LC_ALL=C sort | cpio --quiet -o -H newc) >"$initrd.tmp.$$"
		mv "$initrd.tmp.$$" "$initrd"
		# Older images (another kernel or init) are of no further use.
		find "$cache" -maxdepth 1 -name 'initramfs-*.cpio' ! -name "${initrd##*/}" -delete
	fi

	# Never KVM: it hangs on this kind of host; TCG boots in seconds.
	timeout -k 5 "$total" qemu-system-x86_64 -accel tcg,thread=multi -cpu "${VM_CPU:-max}" -m "$mem" -smp 2 \
		-nodefaults -display none -no-reboot -nic none -monitor none \
		-serial "file:$log" \
		-kernel "$kernel" -initrd "$initrd" \
		-append "console=ttyS0 panic=-1 quiet rdinit=/init sluice_guest=$here/guest.sh" \
		-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
		-virtfs "local,path=$res,mount_tag=results,security_model=none" \
		</dev/null >"$tmp/qemu.out" 2>&1 &
	qpid=$!
fi
rc=0
wait "$qpid" || rc=$?
qpid=
t1=$(date +%s.%N)

# ---- results ----
# quiet keeps warnings off the console: the guest's dmesg has them all.
bad=$(cat "$log" "$res/dmesg" 2>/dev/null | tr -d '\r' |
	grep -E 'BUG:|WARNING:|Oops|Kernel panic' | awk '!seen[$0]++' || true)
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] || [ -e "$res/timedout" ]; then
	{
		echo "vm-test: the guest did not finish within $total s (the command's share: $limit s)"
		[ -s "$res/output" ] && { echo "output so far:"; tail -n 20 "$res/output" | sed 's/^/  > /'; }
		tail_console
	} >&2
	exit 1
fi
if [ ! -s "$res/status" ]; then
	{
		echo "vm-test: the guest stopped without the command's status (qemu exit $rc)"
		[ -n "$bad" ] && printf '%s\n' "$bad" | sed 's/^/  ! /'
		[ -s "$tmp/qemu.out" ] && sed 's/^/  qemu: /' "$tmp/qemu.out"
		tail_console 40
	} >&2
	exit 1
fi
status=$(cat "$res/status")
[ -s "$res/output" ] && cat "$res/output"

if [ -n "$bad" ]; then
	{
		echo "vm-test: the kernel reported problems (the command exited $status):"
		printf '%s\n' "$bad" | sed 's/^/  ! /'
	} >&2
	exit 1
fi
echo "vm-test: $kver, command started $(cat "$res/uptime" 2>/dev/null || echo '?') s after boot," \
	"exited $status, $(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }") s in all" >&2
exit "$status"
