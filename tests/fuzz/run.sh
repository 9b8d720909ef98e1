#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs every libFuzzer target of tests/fuzz/ (one per fuzz_<name>.c) for a
# given time and prints one line per target: "ok   fuzz_<name>: ..." or
# "FAIL fuzz_<name>: ..." followed by the tail of its output.
#
#   tests/fuzz/run.sh FUZZ_BUILD SECONDS [--smoke] [NAME...]
#
# Each target starts from its seed corpus, tests/fuzz/corpus/<name>/ (and
# uses tests/fuzz/<name>.dict when there is one), but never writes into
# the tree: by default it fuzzes FUZZ_BUILD/corpus/<name>, a copy that
# keeps what earlier runs found; with --smoke (make test) a temporary copy
# that is removed afterwards.  Crash inputs go to FUZZ_BUILD/artifacts/<name>/.
# FUZZ_JOBS targets run at once (default 2).  Exit status 1 if any failed.
set -u
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: tests/fuzz/run.sh FUZZ_BUILD SECONDS [--smoke] [NAME...]}
secs=${2:?usage: tests/fuzz/run.sh FUZZ_BUILD SECONDS [--smoke] [NAME...]}
shift 2
smoke=0
if [ "${1:-}" = --smoke ]; then
	smoke=1
	shift
fi
build=$(cd "$build" 2>/dev/null && pwd) || { echo "FAIL fuzz: no build dir (make fuzz-build)"; exit 1; }
jobs=${FUZZ_JOBS:-2}
tmp=$(mktemp -d /tmp/sluice-fuzz.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# The targets are the sources: a missing binary is a failure, not a skip.
names=()
if [ $# -gt 0 ]; then
	names=("$@")
else
	for src in "$here"/fuzz_*.c; do
		[ -e "$src" ] || continue
		n=$(basename "$src" .c)
		names+=("${n#fuzz_}")
	done
fi

# One target: its result line in $tmp/NAME.result, its output in $tmp/NAME.log.
run_one() {
	local name=$1 bin="$build/fuzz/fuzz_$1" corpus seeds="$here/corpus/$1"
	local art="$build/artifacts/$1/" log="$tmp/$1.log" rc runs speed
	local opts=()
	if [ ! -x "$bin" ]; then
		echo "FAIL fuzz_$name: not built ($bin)" >"$tmp/$name.result"
		return
	fi
	if [ "$smoke" = 1 ]; then
		corpus="$tmp/corpus-$name"
	else
		corpus="$build/corpus/$name"
	fi
	mkdir -p "$corpus" "$art"
	[ -d "$seeds" ] && cp -rn "$seeds"/. "$corpus"/
	[ -f "$here/$name.dict" ] && opts+=("-dict=$here/$name.dict")
	"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$art" "${opts[@]}" "$corpus" >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
	if [ "$rc" -eq 0 ] && [ -n "$runs" ]; then
		echo "ok   fuzz_$name: ${secs}s, $runs runs, $speed exec/s, corpus $(ls "$corpus" | wc -l)" \
			>"$tmp/$name.result"
	else
		{
			echo "FAIL fuzz_$name: exit $rc after ${runs:-?} runs; inputs in $art"
			grep -v '^#\|^INFO\|^\s*$' "$log" | tail -25 | sed 's/^/    /'
		} >"$tmp/$name.result"
	fi
}

running=0
for name in "${names[@]}"; do
	if [ "$running" -ge "$jobs" ]; then
		wait -n
		running=$((running - 1))
	fi
	run_one "$name" &
	running=$((running + 1))
done
wait

failed=0
for name in "${names[@]}"; do
	cat "$tmp/$name.result"
	grep -q '^FAIL' "$tmp/$name.result" && failed=$((failed + 1))
done
[ "${#names[@]}" -gt 0 ] || { echo "FAIL fuzz: no targets in $here"; exit 1; }
[ "$failed" -eq 0 ]
