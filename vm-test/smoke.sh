#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The first in-guest test (vm-test/run.sh -- vm-test/smoke.sh): the guest
# runs Debian's 6.1 kernel, kTLS is available once tls is loaded, and
# bpffs and cgroup2 are mounted where sluice expects them.  One line per
# check, "ok NAME" or "FAIL NAME: why"; exit 0 only if all hold.
failed=0
ok() { echo "ok $1"; }
fail() { echo "FAIL $1: $2"; failed=1; }
fstype() { awk -v d="$1" '$2 == d { t = $3 } END { print t }' /proc/mounts; }

r=$(uname -r)
case "$r" in
6.1.*) ok "kernel $r" ;;
*) fail kernel "uname -r is $r, not 6.1.*" ;;
esac

modprobe tls 2>&1 || true
if [ -r /proc/net/tls_stat ]; then
	ok "ktls (/proc/net/tls_stat)"
	sed 's/^/  /' /proc/net/tls_stat
else
	fail ktls "no /proc/net/tls_stat after modprobe tls"
fi

t=$(fstype /sys/fs/bpf)
if [ "$t" = bpf ]; then
	ok "bpffs on /sys/fs/bpf"
else
	fail bpffs "/sys/fs/bpf is '${t:-not mounted}'"
fi
t=$(fstype /sys/fs/cgroup/unified)
if [ "$t" = cgroup2 ]; then
	ok "cgroup2 on /sys/fs/cgroup/unified"
else
	fail cgroup2 "/sys/fs/cgroup/unified is '${t:-not mounted}'"
fi

exit "$failed"
