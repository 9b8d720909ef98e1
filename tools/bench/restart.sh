#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Rolling restart figures: runs test_upgrade's restart-under-load scenario
# (tests/integration/test_upgrade.py: a new sluiced binary started beside
# the old one with kernel.pin_links, the old one then drained, clients
# opening new connections all the while) for ROUNDS rounds, and writes the
# "## Rolling restart" section of RESULTS with the image size.
#
#   tools/bench/restart.sh [BUILD_DIR] [ROUNDS]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${1:-build}
ROUNDS=${2:-10}
RESULTS=${RESULTS:-$ROOT/tools/bench/results.md}
# shellcheck source=tools/bench/section.sh
. "$ROOT/tools/bench/section.sh"
tmp=$(mktemp -d)
tag="localhost/sluice-bench-$$:test"
trap 'rm -rf "$tmp"; podman rmi -f "$tag" >/dev/null 2>&1 || true' EXIT

SLUICE_RESTART_ROUNDS=$ROUNDS python3 "$ROOT/tests/integration/run.py" --build "$BUILD" \
	--filter test_upgrade_rolling_restart >"$tmp/out" 2>&1 ||
	{ tail -30 "$tmp/out" >&2; echo "restart.sh: the scenario failed" >&2; exit 1; }
line=$(grep '^restart-bench: ' "$tmp/out" | tail -1)
[ -n "$line" ] || { echo "restart.sh: no figures" >&2; exit 1; }
get() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$line"; }

size="not built (no podman)"
if command -v podman >/dev/null 2>&1 &&
	"$ROOT/deploy/image/build.sh" --build "$BUILD" --tag "$tag" >/dev/null 2>&1; then
	bytes=$(podman image inspect --format '{{.Size}}' "$tag")
	size=$(awk -v b="$bytes" 'BEGIN { printf "%.1f MB (%d bytes)", b / 1e6, b }')
fi

{
	echo "## Rolling restart"
	echo
	echo "$(get rounds) rounds of test_upgrade's scenario in network namespaces: a new sluiced"
	echo "binary starts beside the running one (kernel.pin_links: it takes over the pinned"
	echo "XDP and sockops links with bpf_link_update and joins the SO_REUSEPORT group),"
	echo "then the old one gets SIGTERM and drains; clients open a new connection per"
	echo "request (GET /healthz) in four threads the whole time, and a denied source keeps"
	echo "sending SYNs."
	echo
	echo "| figure | value |"
	echo "|---|---:|"
	echo "| requests during the restarts | $(get requests) |"
	echo "| refused or failed connections | $(get refused) |"
	echo "| new sluiced start → serving (/readyz 200), median | $(get ready_median_ms) ms |"
	echo "| new sluiced start → serving, worst | $(get ready_max_ms) ms |"
	echo "| longest pause between served requests per round, median | $(get gap_median_ms) ms |"
	echo "| longest pause between served requests, worst round | $(get gap_max_ms) ms |"
	echo "| image size (deploy/image, FROM scratch) | $size |"
	echo
	echo "The old sluiced serves until the new one is ready, so \"start → serving\" is the"
	echo "rollout's time per node, not a gap: clients never wait for it. The pauses are"
	echo "the clients' own pace on this 2-core machine (each request a new connection,"
	echo "client threads, gateway and the starting daemon sharing two cores)."
} >"$tmp/section"
write_section "Rolling restart" "$tmp/section" "$RESULTS"
cat "$tmp/section"
