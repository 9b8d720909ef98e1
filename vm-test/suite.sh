#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The in-guest suite (tests/run.sh BUILD vm, make vm-test), run in one boot:
#   vm-test/run.sh -- vm-test/suite.sh BUILD_DIR
# vm-test/smoke.sh, vm-test/ktls.sh (TLS termination on kTLS),
# vm-test/ktls_upstream.sh (https backends on kTLS), the upstream TLS
# client's unit test (test_tls: on this kernel its sessions take kTLS),
# then every unit test that loads BPF into the kernel (its source includes
# <bpf/...> or "bpf_fixture.h"), on the guest's kernel.  Each is followed by the line "vm-test: NAME exit STATUS"; the
# exit status is 1 if any failed.
build=${1:?usage: vm-test/suite.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
failed=0

run() {
	name=$1
	shift
	"$@" 2>&1
	rc=$?
	echo "vm-test: $name exit $rc"
	[ "$rc" -eq 0 ] || failed=1
}

run smoke "$here/smoke.sh"
run ktls "$here/ktls.sh" "$build"
run ktls_upstream "$here/ktls_upstream.sh" "$build"
run test_tls "$build/tests/test_tls"
# The end-to-end kernel tests (network namespaces, XDP on a veth, sockops,
# steering, sluicectl) on this kernel too.
run kernel_e2e python3 "$here/../tests/integration/run.py" --build "$build" --filter test_kernel
# shellcheck disable=SC2013  # file names without spaces
for src in $(grep -lE '#include (<bpf/|"bpf_fixture.h")' "$here"/../tests/unit/test_*.c); do
	t=$(basename "$src" .c)
	run "$t" "$build/tests/$t"
done
exit "$failed"
