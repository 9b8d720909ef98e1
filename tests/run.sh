#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs the test suites and prints one closing line: "N passed, N failed".
#   tests/run.sh BUILD_DIR [unit|integration|fuzz|vm|all]
# vm boots Debian's 6.1 kernel in QEMU (vm-test/run.sh) and runs
# vm-test/smoke.sh and the BPF unit tests there, in one boot.
# fuzz runs every libFuzzer target of tests/fuzz/ for FUZZ_SMOKE_TIME
# seconds (default 3) from FUZZ_BUILD (default build-fuzz, built by
# `make fuzz-build`; the fuzz build is always ASan/UBSan, whatever BUILD_DIR).
set -u
build=${1:?usage: tests/run.sh BUILD_DIR [unit|integration|fuzz|vm|all]}
what=${2:-all}
here=$(cd "$(dirname "$0")" && pwd)
passed=0 failed=0 failures=()

# Counts the output of one cmocka binary: count_cmocka NAME OUTPUT STATUS.
count_cmocka() {
	local name=$1 out=$2 rc=$3 p f
	printf '%s\n' "$out" | grep -E '^\[  (PASSED|FAILED|  OK|ERROR)' | sed "s|^|$name: |"
	p=$(printf '%s\n' "$out" | grep -cE '^\[       OK \]')
	f=$(printf '%s\n' "$out" | grep -cE '^\[  (FAILED|ERROR)   \] [a-z_0-9]+$')
	# A binary that crashed or failed without naming a test still counts.
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
		printf '%s\n' "$out" | tail -20
	fi
	[ "$f" -gt 0 ] && failures+=("$name")
	passed=$((passed + p)) failed=$((failed + f))
}

run_unit() {
	local t out rc
	for t in "$build"/tests/test_*; do
		[ -x "$t" ] || continue
		out=$("$t" 2>&1); rc=$?
		count_cmocka "$(basename "$t")" "$out" "$rc"
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

# Each fuzz target is one test: it passes when it ran its time without a
# crash, a sanitizer report, a leak or a failed property.
run_fuzz() {
	local out line
	out=$("$here/fuzz/run.sh" "${FUZZ_BUILD:-$here/../build-fuzz}" "${FUZZ_SMOKE_TIME:-3}" \
		--smoke 2>&1)
	printf '%s\n' "$out"
	while IFS= read -r line; do
		case $line in
		"ok   "*) passed=$((passed + 1)) ;;
		"FAIL "*)
			failed=$((failed + 1))
			line=${line#FAIL }
			failures+=("${line%%:*}")
			;;
		esac
	done <<<"$out"
}

# One guest runs vm-test/suite.sh, which ends each test's output with
# "vm-test: NAME exit STATUS": smoke.sh and ktls.sh count their "ok"/"FAIL" lines, the
# BPF tests count like unit tests.  A guest that fails on its own (timeout,
# kernel BUG/WARNING, no status) counts as one failure, "vm".
# The guest is emulated (TCG): a sanitizer build runs there several times
# slower, and a machine busy with other builds slows both; VM_TIMEOUT
# overrides the limit.
run_vm() {
	local out rc line chunk="" name st p f before=$failed limit=300
	case $build in *san*) limit=900 ;; esac
	limit=${VM_TIMEOUT:-$limit}
	out=$("$here/../vm-test/run.sh" --timeout "$limit" -- \
		"vm-test/suite.sh $(cd "$build" && pwd)" 2>&1); rc=$?
	while IFS= read -r line; do
		if [[ $line =~ ^vm-test:\ ([A-Za-z0-9_]+)\ exit\ ([0-9]+)$ ]]; then
			name=vm/${BASH_REMATCH[1]} st=${BASH_REMATCH[2]}
			if [ "$name" = vm/kernel_e2e ]; then
				printf '%s' "$chunk" | grep -E '^(FAIL|integration:)' | sed "s|^|$name: |"
				p=$(printf '%s' "$chunk" | sed -n 's/^integration: \([0-9]*\) passed.*/\1/p' | tail -1)
				f=$(printf '%s' "$chunk" | sed -n 's/^integration: [0-9]* passed, \([0-9]*\) failed.*/\1/p' | tail -1)
				p=${p:-0} f=${f:-0}
				[ "$st" -ne 0 ] && [ "$f" -eq 0 ] && f=1
				[ "$f" -gt 0 ] && failures+=("$name")
				passed=$((passed + p)) failed=$((failed + f))
			elif [ "$name" = vm/smoke ] || [ "$name" = vm/ktls ] || [ "$name" = vm/ktls_upstream ]; then
				printf '%s' "$chunk" | sed "s|^|$name: |"
				p=$(printf '%s' "$chunk" | grep -c '^ok ')
				f=$(printf '%s' "$chunk" | grep -c '^FAIL ')
				[ "$st" -ne 0 ] && [ "$f" -eq 0 ] && f=1
				[ "$f" -gt 0 ] && failures+=("$name")
				passed=$((passed + p)) failed=$((failed + f))
			else
				count_cmocka "$name" "${chunk%$'\n'}" "$st"
			fi
			chunk=""
		else
			chunk+=$line$'\n'
		fi
	done <<<"$out"
	# What is left is vm-test/run.sh's own word: timing, or why it failed.
	if [ "$rc" -ne 0 ]; then
		printf '%s' "$chunk" | tail -40
		if [ "$failed" -eq "$before" ]; then
			failures+=("vm")
			failed=$((failed + 1))
		fi
	else
		printf '%s' "$chunk" | grep '^vm-test: '
	fi
}

case "$what" in
unit) run_unit ;;
integration) run_integration ;;
fuzz) run_fuzz ;;
vm) run_vm ;;
all) run_unit; run_integration; run_fuzz; run_vm ;;
*) echo "unknown suite: $what" >&2; exit 2 ;;
esac

[ ${#failures[@]} -gt 0 ] && echo "failing: ${failures[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
