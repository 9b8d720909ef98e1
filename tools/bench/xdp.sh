#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# XDP cost benchmark: runs BUILD_DIR/xdpbench (built beforehand, e.g. by
# `make all`; this script builds nothing) and puts its report in RESULTS
# (default tools/bench/results.md) as the "## XDP" section: replaced in
# place when the file has one, appended otherwise.  The rest of the file is
# left as it was.  Needs root, like xdpbench.
#
#   tools/bench/xdp.sh [BUILD_DIR] [xdpbench options, e.g. -n 1000000 -r 5]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${1:-build}
[ $# -gt 0 ] && shift
RESULTS=${RESULTS:-$ROOT/tools/bench/results.md}
XDPBENCH=$BUILD/xdpbench
# shellcheck source=tools/bench/section.sh
. "$ROOT/tools/bench/section.sh"

if [ ! -x "$XDPBENCH" ]; then
	echo "xdp.sh: $XDPBENCH not found; build it first (make all)" >&2
	exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$XDPBENCH" "$@" | tee "$tmp/section.md"
grep -q '^## XDP$' "$tmp/section.md" || { echo "xdp.sh: no report from xdpbench" >&2; exit 1; }
{
	echo
	echo "Machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)," \
	     "kernel $(uname -r), $(date -u '+%Y-%m-%d %H:%M:%S UTC')."
} >> "$tmp/section.md"

write_section XDP "$tmp/section.md" "$RESULTS"
echo "xdp.sh: wrote the XDP section of $RESULTS" >&2
