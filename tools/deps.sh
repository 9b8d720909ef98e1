#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian packages sluice needs to build, run, test and bench.
# Idempotent: only missing packages are installed, and apt-get update runs
# only when something is missing.  Usage: tools/deps.sh [build|test|deploy|vm|bench|all]
set -eu

build="make gcc clang llvm pkg-config liburing-dev libyaml-dev libssl-dev libbpf-dev bpftool libhiredis-dev libcurl4-openssl-dev libhyperscan-dev"
# libclang-rt-14-dev: libFuzzer and clang's sanitizer runtimes (make fuzz,
# the fuzz suite of make test); clang only recommends it.
test="libcmocka-dev libclang-rt-14-dev curl python3 openssl valgrind iproute2 hping3 redis-server"
# The image test (deploy/image/build.sh, test_image.py): podman builds and
# runs the scratch image; runc runs it where crun cannot (hybrid cgroups).
deploy="podman runc"
# vm-test/run.sh: QEMU (TCG) booting Debian's 6.1 kernel with an initramfs
# of busybox-static and modules picked by kmod's modprobe, packed by cpio.
vm="qemu-system-x86 linux-image-amd64 busybox-static cpio kmod"
bench="wrk nginx-light haproxy"

case "${1:-all}" in
build) want="$build" ;;
test)  want="$build $test $deploy $vm" ;;
vm)    want="$vm" ;;
deploy) want="$build $deploy" ;;
bench) want="$build $test $deploy $bench" ;;
all)   want="$build $test $deploy $vm $bench" ;;
*) echo "usage: $0 [build|test|deploy|vm|bench|all]" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
		missing="$missing $p"
done
# The OpenAI SDK test runs on Node.js; a node that came with the machine
# (with its own npm) is as good as Debian's.
case "${1:-all}" in build|vm) ;; *)
	command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm" ;;
esac
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: missing packages:$missing (run as root to install them)" >&2
	exit 1
fi
echo "deps.sh: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# Package install scripts must not start nginx/haproxy services on this node.
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d.sluice
[ -e /usr/sbin/policy-rc.d ] || { cp /usr/sbin/policy-rc.d.sluice /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; trap 'rm -f /usr/sbin/policy-rc.d' EXIT; }
rm -f /usr/sbin/policy-rc.d.sluice
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
