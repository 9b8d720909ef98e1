#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# SYN flood figures: runs the flood scenario of the kernel tests (sluiced
# with XDP on a veth in a network namespace, hping3 flooding from one
# source while a legitimate client at another makes requests; see
# tests/integration/test_kernel.py) and puts its figures in RESULTS as the
# "## SYN flood" section.  Needs root.  Everything the scenario creates is
# removed by the test harness, also on failure.
#
#   tools/bench/synflood.sh [BUILD_DIR]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${1:-build}
RESULTS=${RESULTS:-$ROOT/tools/bench/results.md}
# shellcheck source=tools/bench/section.sh
. "$ROOT/tools/bench/section.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

python3 "$ROOT/tests/integration/run.py" --build "$BUILD" --filter syn_flood -v >"$tmp/out" 2>&1 ||
	{ cat "$tmp/out" >&2; echo "synflood.sh: the flood scenario failed" >&2; exit 1; }
flood=$(sed -n 's/^info: flood: //p' "$tmp/out" | tail -1)
legit=$(sed -n 's/^info: legit client latency ms: //p' "$tmp/out" | tail -1)
[ -n "$flood" ] && [ -n "$legit" ] || { echo "synflood.sh: no figures in the output" >&2; exit 1; }
q99=$(sed -n 's/.*quiet p50 [0-9.]* p99 \([0-9.]*\);.*/\1/p' <<<"$legit")
f99=$(sed -n 's/.*under flood p50 [0-9.]* p99 \([0-9.]*\)$/\1/p' <<<"$legit")
ratio=$(awk -v a="$f99" -v b="$q99" 'BEGIN { printf "%.2f", a / b }')
verdict=$(awk -v r="$ratio" 'BEGIN { print (r <= 2.0) ? "PASS" : "MISS" }')

{
	echo "## SYN flood"
	echo
	echo "One source floods SYNs (hping3, ~3 s) at sluiced behind XDP on a veth"
	echo "(source_conn_rate 50/s, burst 50) while a client at another address makes"
	echo "20 requests; the same 20 are made without the flood first."
	echo
	echo "- flood: $flood"
	echo "- legitimate client, ms: $legit"
	echo "- p99 under flood ÷ quiet p99: $ratio (target ≤ 2.0: $verdict)"
} >"$tmp/section.md"

write_section "SYN flood" "$tmp/section.md" "$RESULTS"
cat "$tmp/section.md"
