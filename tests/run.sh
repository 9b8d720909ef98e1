#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs the test suites and prints one closing line: "N passed, N failed".
#   tests/run.sh BUILD_DIR [unit|integration|all]
set -u
build=${1:?usage: tests/run.sh BUILD_DIR [unit|integration|all]}
what=${2:-all}
here=$(cd "$(dirname "$0")" && pwd)
passed=0 failed=0 failures=()

run_unit() {
	local t out p f
	for t in "$build"/tests/test_*; do
		[ -x "$t" ] || continue
		out=$("$t" 2>&1); rc=$?
		printf '%s\n' "$out" | grep -E '^\[  (PASSED|FAILED|  OK|ERROR)' | sed "s|^|$(basename "$t"): |"
		p=$(printf '%s\n' "$out" | grep -cE '^\[       OK \]')
		f=$(printf '%s\n' "$out" | grep -cE '^\[  (FAILED|ERROR)   \] [a-z_0-9]+$')
		# A binary that crashed or failed without naming a test still counts.
		if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
			f=1
			printf '%s\n' "$out" | tail -20
		fi
		[ "$f" -gt 0 ] && failures+=("$(basename "$t")")
		passed=$((passed + p)) failed=$((failed + f))
	done
}

run_integration() {
	local out rc p f
	out=$(python3 "$here/integration/run.py" --build "$build" 2>&1); rc=$?
	printf '%s\n' "$out"
	p=$(printf '%s\n' "$out" | sed -n 's/^integration: \([0-9]*\) passed, \([0-9]*\) failed.*/\1/p' | tail -1)
	f=$(printf '%s\n' "$out" | sed -n 's/^integration: \([0-9]*\) passed, \([0-9]*\) failed.*/\2/p' | tail -1)
	[ -z "$p" ] && p=0
	[ -z "$f" ] && f=0
	[ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
	[ "$f" -gt 0 ] && failures+=("integration")
	passed=$((passed + p)) failed=$((failed + f))
}

case "$what" in
unit) run_unit ;;
integration) run_integration ;;
all) run_unit; run_integration ;;
*) echo "unknown suite: $what" >&2; exit 2 ;;
esac

[ ${#failures[@]} -gt 0 ] && echo "failing: ${failures[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
