#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Builds sluice's container image from this tree with podman (or buildah),
# FROM scratch: sluiced and sluicectl, exactly the shared libraries ldd
# says they load, the dynamic loader, the CA store and the example config.
# No registry is contacted.
#
#   deploy/image/build.sh [--build DIR] [--tag NAME] [--save FILE.tar]
#
# --build: a build directory with sluiced and sluicectl (default build/,
# made with `make` when missing); --tag: default localhost/sluice:<VERSION>;
# --save: also write the image as an OCI archive (for `podman load` or
# `ctr import` on nodes without a registry).
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
build="$root/build"
tag="localhost/sluice:$(cat "$root/VERSION")"
save=""
while [ $# -gt 0 ]; do
	case "$1" in
	--build) build=$2; shift 2 ;;
	--tag) tag=$2; shift 2 ;;
	--save) save=$2; shift 2 ;;
	*) echo "usage: $0 [--build DIR] [--tag NAME] [--save FILE.tar]" >&2; exit 2 ;;
	esac
done
case "$build" in /*) ;; *) build="$root/$build" ;; esac
[ -x "$build/sluiced" ] && [ -x "$build/sluicectl" ] ||
	make -C "$root" -j2 BUILD="$(basename "$build")" >/dev/null

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT INT TERM
rootfs="$stage/rootfs"
mkdir -p "$rootfs/usr/sbin" "$rootfs/etc/sluice/keys" "$rootfs/etc/ssl/certs" \
	"$rootfs/sys/fs/bpf" "$rootfs/tmp" "$rootfs/run"
chmod 1777 "$rootfs/tmp"
install -m 0755 "$build/sluiced" "$build/sluicectl" "$rootfs/usr/sbin/"

# Every library the binaries load, at the path the loader looks for it
# (the loader itself included), so the image needs no base layer.
for bin in "$build/sluiced" "$build/sluicectl"; do
	ldd "$bin" | awk '/=> \// { print $3 } /^\t\// { print $1 }'
done | sort -u | while read -r lib; do
	mkdir -p "$rootfs$(dirname "$lib")"
	cp -L "$lib" "$rootfs$lib"
done
# glibc resolves names through NSS for backends given by host name.
for lib in /lib/x86_64-linux-gnu/libnss_dns.so.2 /lib/x86_64-linux-gnu/libnss_files.so.2; do
	[ -e "$lib" ] && cp -L "$lib" "$rootfs$lib"
done
printf 'hosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
printf 'root:x:0:0:root:/:/usr/sbin/sluiced\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\n' >"$rootfs/etc/group"
# The system CA store, for https:// backends and JWKS URLs.
cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
install -m 0644 "$root/config/sluice.example.yaml" "$rootfs/etc/sluice/sluice.yaml"
cp "$root/deploy/image/Containerfile" "$stage/"

if command -v podman >/dev/null 2>&1; then
	podman build --quiet --network none --pull=never -t "$tag" -f "$stage/Containerfile" "$stage" >/dev/null
	[ -z "$save" ] || podman save --quiet --format oci-archive -o "$save" "$tag"
elif command -v buildah >/dev/null 2>&1; then
	buildah bud --quiet --network none --pull-never -t "$tag" -f "$stage/Containerfile" "$stage" >/dev/null
	[ -z "$save" ] || buildah push --quiet "$tag" "oci-archive:$save"
else
	echo "build.sh: needs podman or buildah (tools/deps.sh deploy installs podman)" >&2
	exit 1
fi
echo "$tag"
