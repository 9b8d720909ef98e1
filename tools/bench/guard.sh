#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Guardrails cost benchmark: runs BUILD_DIR/guardbench (built beforehand;
# this script builds nothing) and puts its report in RESULTS (default
# tools/bench/results.md) as the "## Guardrails" section: replaced in place
# when the file has one, appended otherwise.
#
#   tools/bench/guard.sh [BUILD_DIR] [guardbench options, e.g. -r 5]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${1:-build}
[ $# -gt 0 ] && shift
RESULTS=${RESULTS:-$ROOT/tools/bench/results.md}
GUARDBENCH=$BUILD/guardbench
# shellcheck source=tools/bench/section.sh
. "$ROOT/tools/bench/section.sh"

if [ ! -x "$GUARDBENCH" ]; then
	echo "guard.sh: $GUARDBENCH not found; build it first (make all)" >&2
	exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$GUARDBENCH" "$@" | tee "$tmp/out"
grep -v '^guard: ' "$tmp/out" >"$tmp/section.md"
grep -q '^## Guardrails$' "$tmp/section.md" || { echo "guard.sh: no report from guardbench" >&2; exit 1; }
{
	echo "Machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)," \
	     "kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%Y-%m-%d %H:%M:%S UTC')."
} >> "$tmp/section.md"

write_section Guardrails "$tmp/section.md" "$RESULTS"
echo "guard.sh: wrote the Guardrails section of $RESULTS" >&2
