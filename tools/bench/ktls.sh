#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# kTLS against userspace TLS: runs vm-test/ktls_bench.sh in the QEMU guest
# (Debian 6.1 has the tls module; this host does not) and writes the
# "## kTLS" section of RESULTS.  Needs root (the runner reads /boot).
#
#   tools/bench/ktls.sh [BUILD_DIR]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${1:-build}
RESULTS=${RESULTS:-$ROOT/tools/bench/results.md}
# shellcheck source=tools/bench/section.sh
. "$ROOT/tools/bench/section.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

build_abs=$(cd "$BUILD" && pwd)
"$ROOT/vm-test/run.sh" --timeout 280 -- "vm-test/ktls_bench.sh $build_abs 40" >"$tmp/out" 2>&1 ||
	{ tail -30 "$tmp/out" >&2; echo "ktls.sh: the guest run failed" >&2; exit 1; }
line=$(grep '^ktls-bench: requests=' "$tmp/out" | tail -1)
[ -n "$line" ] || { echo "ktls.sh: no figures" >&2; exit 1; }
get() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$line"; }
ratio=$(get ratio)
verdict=$(awk -v r="$ratio" 'BEGIN { print (r <= 0.7) ? "PASS" : "MISS" }')

{
	echo "## kTLS"
	echo
	echo "In the QEMU guest (Debian 6.1, TCG, -cpu max: AES-NI and PCLMUL emulated, the"
	echo "kernel on aesni_intel): one sluiced with kernel TLS, one"
	echo "without, each sending $(get response_bytes)-byte streamed responses over TLS 1.2 to"
	echo "$(get requests) requests on one kept-alive connection; sluiced's CPU time per request"
	echo "(all threads, schedstat), median of three alternating rounds."
	echo
	echo "| sluiced | CPU µs/request |"
	echo "|---|---:|"
	echo "| kTLS (both directions) | $(get ktls_us) |"
	echo "| userspace TLS | $(get userspace_us) |"
	echo
	echo "kTLS ÷ userspace: $ratio (target ≤ 0.7: $verdict)"
} >"$tmp/section.md"

write_section "kTLS" "$tmp/section.md" "$RESULTS"
cat "$tmp/section.md"
