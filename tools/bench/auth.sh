#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# What identity and quotas cost per request, measured in one run against
# the same sluiced build with neither: one worker in front of mockllm, the
# same ~1 KB non-stream chat request (tools/bench/chat.lua), five modes:
#
#   none     no auth: section, no limits
#   key      an API key (sk-sluice-...) and a tenant with request and token
#            limits: one SHA-256 and one local reservation per request
#   jwt      an RS256 JWT (2048-bit key, warm JWKS) and the same limits; the
#            same token on every request, as clients send it (each worker
#            keeps the tokens it verified: a hit is a compare, not an RSA check)
#   jwt_new  200 RS256 tokens in turn, more than the 64-entry cache holds:
#            nearly every request is a full RS256 verification
#   global   the API key, the limits enforced across nodes through a real
#            redis-server (leases): Redis round trips per request counted
#
# For each mode, ROUNDS interleaved rounds of: wrk -t1 -c1 --latency for the
# p50, and wrk -t2 -c16 with sluiced's CPU time from /proc for CPU µs per
# request.  The added p50 is the median over rounds of each round's
# difference to that round's `none` (paired, so drift cancels); the CPU
# difference is between medians.  Writes the "## Identity and quotas" section of RESULTS.
#
#   tools/bench/auth.sh [BUILD_DIR]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
RESULTS=${RESULTS:-$ROOT/tools/bench/results.md}
# shellcheck source=tools/bench/section.sh
. "$ROOT/tools/bench/section.sh"
DUR=${DUR:-3}
ROUNDS=${ROUNDS:-5}
MODES="none key jwt jwt_new global"
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
wait_port() {
	local i
	for ((i = 0; i < 100; i++)); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.05
	done
	echo "auth bench: nothing listens on port $1" >&2
	exit 1
}
to_us() {
	awk -v v="$1" 'BEGIN { f = 0
		if (v ~ /us$/) f = 1; else if (v ~ /ms$/) f = 1000; else if (v ~ /s$/) f = 1000000
		sub(/[a-z]+$/, "", v); printf "%.1f", v * f }'
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

mock_port=$(free_port)
"$BUILD/mockllm" --listen "127.0.0.1:$mock_port" --threads 1 2>/dev/null &
pids+=($!)
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" \
	--logfile "$tmp/redis.log" &
pids+=($!)
wait_port "$mock_port"
wait_port "$redis_port"

# One tenant with limits high enough never to refuse, so every request
# pays the whole admission: identity, reservation, reconciliation.
mkdir -p "$tmp/keys"
limits='{requests_per_minute: 100000000, tokens_per_minute: 100000000000, tokens_per_day: 1000000000000, concurrent: 10000}'
python3 - "$tmp" <<'PY'
import json, sys
sys.path.insert(0, "tests/integration")
import jwtkit
d = sys.argv[1]
k = jwtkit.RsaKey(d, "bench-rsa")
open(d + "/jwks.json", "w").write(jwtkit.jwks(k))
open(d + "/jwt", "w").write(jwtkit.token(k, {"tenant": "acme", "aud": "sluice"}, ttl=86400))
with open(d + "/jwts", "w") as f:
    for i in range(200):
        f.write(jwtkit.token(k, {"tenant": "acme", "aud": "sluice", "jti": str(i)}, ttl=86400) + "\n")
PY

declare -A port admin_port pid
for mode in $MODES; do
	port[$mode]=$(free_port)
	admin_port[$mode]=$(free_port)
	{
		echo "listen: \"127.0.0.1:${port[$mode]}\""
		echo "admin: {listen: \"127.0.0.1:${admin_port[$mode]}\"}"
		echo "workers: 1"
		echo 'access_log: "off"'
		echo "log_level: warn"
		echo "kernel: {enabled: false}"
		echo "backends:"
		echo "  - {name: mock, url: \"http://127.0.0.1:$mock_port/v1\", models: [\"mock-small\"]}"
		if [ "$mode" != none ]; then
			echo "tenants:"
			echo "  - {name: acme, keys_file: \"$tmp/keys/acme\", limits: $limits}"
			echo "auth:"
			echo "  anonymous: deny"
			echo "  jwt: {jwks_file: \"$tmp/jwks.json\", audience: sluice}"
		fi
		if [ "$mode" = global ]; then
			echo "quota:"
			echo "  redis: {url: \"redis://127.0.0.1:$redis_port\", on_error: closed}"
		fi
	} >"$tmp/$mode.yaml"
done
key=$("$BUILD/sluicectl" key create acme --keys-file "$tmp/keys/acme" 2>/dev/null | tail -1)
jwt=$(cat "$tmp/jwt")
for mode in $MODES; do
	"$BUILD/sluiced" -c "$tmp/$mode.yaml" 2>"$tmp/$mode.err" &
	pid[$mode]=$!
	pids+=($!)
done
for mode in $MODES; do wait_port "${port[$mode]}"; done

auth_of() {
	case $1 in
	none|jwt_new) echo "" ;;
	jwt) echo "Bearer $jwt" ;;
	*) echo "Bearer $key" ;;
	esac
}
tokens_of() { [ "$1" = jwt_new ] && echo "$tmp/jwts" || echo ""; }

# wrk: "p50_us" at one connection, or "requests cpu_ticks" at 16.
p50() {
	SLUICE_AUTH=$(auth_of "$1") SLUICE_TOKENS=$(tokens_of "$1") wrk -t1 -c1 -d"${DUR}s" --latency -s "$ROOT/tools/bench/chat.lua" \
		"http://127.0.0.1:${port[$1]}/v1/chat/completions" >"$tmp/wrk.out" 2>&1
	grep -q "Non-2xx" "$tmp/wrk.out" && { cat "$tmp/wrk.out" >&2; echo "auth bench: $1: non-2xx" >&2; exit 1; }
	to_us "$(awk '$1 == "50%" { print $2 }' "$tmp/wrk.out")"
}
load() {
	local before after n
	before=$(cpu_ticks "${pid[$1]}")
	SLUICE_AUTH=$(auth_of "$1") SLUICE_TOKENS=$(tokens_of "$1") wrk -t2 -c16 -d"${DUR}s" -s "$ROOT/tools/bench/chat.lua" \
		"http://127.0.0.1:${port[$1]}/v1/chat/completions" >"$tmp/wrk.out" 2>&1
	after=$(cpu_ticks "${pid[$1]}")
	grep -q "Non-2xx" "$tmp/wrk.out" && { cat "$tmp/wrk.out" >&2; echo "auth bench: $1: non-2xx" >&2; exit 1; }
	n=$(awk '/requests in/ { print $1 }' "$tmp/wrk.out")
	awk -v n="$n" -v c=$((after - before)) -v hz="$(getconf CLK_TCK)" \
		'BEGIN { printf "%.2f", n ? c * 1e6 / hz / n : 0 }'
	echo " $n"
}

declare -A p50s dp50s cpus reqs
base_round=0
for mode in $MODES; do
	p50 "$mode" >/dev/null	# warm-up: connections, key cache, leases
done
for ((r = 0; r < ROUNDS; r++)); do
	for mode in $MODES; do
		v=$(p50 "$mode")
		p50s[$mode]="${p50s[$mode]:-} $v"
		# the difference to this round's no-auth p50, measured just before:
		# paired, so a slow drift of the machine cancels out
		[ "$mode" = none ] && base_round=$v
		dp50s[$mode]="${dp50s[$mode]:-} $(awk -v a="$v" -v b="$base_round" 'BEGIN { print a - b }')"
		read -r c n < <(load "$mode")
		cpus[$mode]="${cpus[$mode]:-} $c"
		reqs[$mode]=$(( ${reqs[$mode]:-0} + n ))
	done
done

redis_calls=$(curl -s "http://127.0.0.1:${admin_port[global]}/metrics" |
	awk '$1 == "sluice_quota_redis_calls_total" { print $2 }')
global_reqs=$(curl -s "http://127.0.0.1:${admin_port[global]}/metrics" |
	awk -F' ' '/^sluice_tenant_requests_total\{tenant="acme"\}/ { print $2 }')

{
	echo "## Identity and quotas"
	echo
	echo "One worker, the same ~1 KB chat request, $ROUNDS interleaved rounds of ${DUR} s per mode"
	echo "(p50: wrk -t1 -c1, median over rounds; added p50: median of each round's difference to"
	echo "that round's no-auth p50; CPU: sluiced's utime+stime over wrk -t2 -c16, median over"
	echo "rounds), against the same build without auth in the same run."
	echo "Every authenticated request also reserves and reconciles request and token limits."
	echo "key: an sk-sluice key; jwt: one RS256 token on every request (each worker keeps the"
	echo "tokens it verified, so this is a compare); jwt_new: 200 RS256 tokens in turn, more than"
	echo "the 64-entry cache, so nearly every request is a full RS256 verification with the"
	echo "JWKS keys already built (the issue's \"warm key cache\" case); global: the key, limits"
	echo "enforced through a real redis-server."
	echo
	echo "| mode | p50 µs | added p50 µs | CPU µs/req | added CPU µs/req | target (added p50) |"
	echo "|---|---:|---:|---:|---:|---|"
	base_c=$(echo "${cpus[none]}" | median)
	for mode in $MODES; do
		p=$(echo "${p50s[$mode]}" | median)
		c=$(echo "${cpus[$mode]}" | median)
		dp=$(echo "${dp50s[$mode]}" | median | awk '{ printf "%+.1f", $1 }')
		dc=$(awk -v a="$c" -v b="$base_c" 'BEGIN { printf "%+.2f", a - b }')
		case $mode in
		key|global) goal=5 ;;
		jwt|jwt_new) goal=30 ;;
		*) goal= ;;
		esac
		verdict=""
		[ -n "$goal" ] && verdict="≤ $goal: $(awk -v d="$dp" -v g="$goal" 'BEGIN { print (d <= g) ? "PASS" : "MISS" }')"
		echo "| $mode | $p | $dp | $c | $dc | $verdict |"
	done
	echo
	echo "Global mode: $redis_calls Redis round trips for $global_reqs requests"
	awk -v c="$redis_calls" -v n="$global_reqs" 'BEGIN {
		r = n ? c * 100 / n : 0
		printf "(%.3f per 100 requests; target ≤ 1: %s).\n", r, (r <= 1) ? "PASS" : "MISS" }'
} >"$tmp/section.md"

write_section "Identity and quotas" "$tmp/section.md" "$RESULTS"
cat "$tmp/section.md"
