#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# TLS handshakes per second on this host (userspace TLS: no tls module
# here), sluiced with one worker against nginx with one worker process,
# same certificate (ECDSA P-256), same TLS 1.3 suite, same client, in one
# run.  The client is `openssl s_time -new` (a full handshake per
# connection), two of them at once; the server's own CPU time per
# handshake comes from /proc.  Writes the "## TLS handshakes" section of
# RESULTS.
#
#   tools/bench/tls.sh [BUILD_DIR]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${1:-build}
RESULTS=${RESULTS:-$ROOT/tools/bench/results.md}
# shellcheck source=tools/bench/section.sh
. "$ROOT/tools/bench/section.sh"
DUR=${DUR:-5}
SUITE=TLS_AES_128_GCM_SHA256
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

(cd "$tmp" &&
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout key.pem \
		-out cert.pem -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost) \
	>/dev/null 2>&1

nginx_port=$(free_port)
cat >"$tmp/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx.err;
events { worker_connections 4096; }
http {
	access_log off;
	server {
		listen 127.0.0.1:$nginx_port ssl;
		ssl_certificate $tmp/cert.pem;
		ssl_certificate_key $tmp/key.pem;
		ssl_protocols TLSv1.3;
		location / { return 200 "ok"; }
	}
}
CONF
nginx -c "$tmp/nginx.conf" -e "$tmp/nginx.err" &
pids+=($!)

mock_port=$(free_port)
"$BUILD/mockllm" --listen "127.0.0.1:$mock_port" 2>/dev/null &
pids+=($!)
sluice_port=$(free_port)
cat >"$tmp/sluice.yaml" <<YAML
listen: "127.0.0.1:$sluice_port"
workers: 1
access_log: "off"
log_level: warn
kernel: {enabled: false}
tls: {cert: "$tmp/cert.pem", key: "$tmp/key.pem", min_version: "1.3"}
backends:
  - {name: mock, url: "http://127.0.0.1:$mock_port/v1", models: ["mock-small"]}
YAML
"$BUILD/sluiced" -c "$tmp/sluice.yaml" &
pids+=($!)
sleep 0.5

# Handshakes/s with two s_time clients at once; and the server's CPU per
# handshake (all its processes: nginx master + worker).
measure() {
	local port=$1 pidlist=$2 before=0 after=0 n=0 p out
	for p in $pidlist; do before=$((before + $(cpu_ticks "$p"))); done
	local clients=()
	for i in 1 2; do
		openssl s_time -connect "127.0.0.1:$port" -new -time "$DUR" -ciphersuites "$SUITE" \
			>"$tmp/s_time.$i" 2>&1 &
		clients+=($!)
	done
	wait "${clients[@]}" || true
	sleep 0.2
	for p in $pidlist; do after=$((after + $(cpu_ticks "$p"))); done
	for i in 1 2; do
		out=$(sed -n 's/^\([0-9]*\) connections in [0-9.]* real seconds.*/\1/p' "$tmp/s_time.$i" | head -1)
		n=$((n + ${out:-0}))
	done
	local hz
	hz=$(getconf CLK_TCK)
	awk -v n="$n" -v t="$DUR" -v c=$((after - before)) -v hz="$hz" \
		'BEGIN { printf "%.0f %.1f\n", n / t, n ? c * 1e6 / hz / n : 0 }'
}

nginx_pids=$(pgrep -f "nginx -c $tmp/nginx.conf" | tr '\n' ' '; pgrep -P "$(pgrep -f "nginx -c $tmp/nginx.conf" | head -1)" | tr '\n' ' ')
sluice_pid=${pids[2]}
read -r n_rate n_cpu < <(measure "$nginx_port" "$nginx_pids")
read -r s_rate s_cpu < <(measure "$sluice_port" "$sluice_pid")
ratio=$(awk -v a="$s_rate" -v b="$n_rate" 'BEGIN { printf "%.2f", b ? a / b : 0 }')
verdict=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.9) ? "PASS" : "MISS" }')

{
	echo "## TLS handshakes"
	echo
	echo "Full TLS 1.3 handshakes ($SUITE, ECDSA P-256 certificate) from two"
	echo "\`openssl s_time -new\` clients for ${DUR} s against each server with one"
	echo "worker, userspace TLS (this host has no tls module), in one run."
	echo
	echo "| server | handshakes/s | server CPU µs/handshake |"
	echo "|---|---:|---:|"
	echo "| nginx | $n_rate | $n_cpu |"
	echo "| sluiced | $s_rate | $s_cpu |"
	echo
	echo "sluiced ÷ nginx handshakes/s: $ratio (target within 10%, ≥ 0.90: $verdict)"
} >"$tmp/section.md"

write_section "TLS handshakes" "$tmp/section.md" "$RESULTS"
cat "$tmp/section.md"
