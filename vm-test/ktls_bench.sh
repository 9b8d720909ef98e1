#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# kTLS against userspace TLS, in the guest (Debian 6.1, tls module):
#   vm-test/run.sh -- vm-test/ktls_bench.sh BUILD_DIR [REQUESTS]
# Two sluiced, one with tls.ktls on and one off, each serve the same
# ~64 KiB streamed response over TLS 1.2 (the version OpenSSL 3.0 puts on
# kernel TLS both ways) to REQUESTS requests on one kept-alive connection; each
# sluiced's CPU time (all threads, from schedstat) per request, median of
# three alternating rounds, is printed as
#   ktls-bench: ktls_us=A userspace_us=B ratio=A/B
build=${1:?usage: vm-test/ktls_bench.sh BUILD_DIR [REQUESTS]}
n=${2:-40}
d=$(mktemp -d)
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$d"
}
trap cleanup EXIT INT TERM
modprobe tls || exit 1

(cd "$d" && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout key.pem -out cert.pem -days 2 -subj /CN=localhost \
	-addext subjectAltName=DNS:localhost) >/dev/null 2>&1 || exit 1

"$build/mockllm" --listen 127.0.0.1:19941 2>/dev/null &
pids="$pids $!"
start_sluiced() {	# name port ktls
	cat >"$d/$1.yaml" <<YAML
listen: "127.0.0.1:$2"
workers: 1
access_log: "off"
log_level: warn
kernel: {enabled: false}
admin: {listen: "127.0.0.1:$(($2 + 10))"}
tls: {cert: "$d/cert.pem", key: "$d/key.pem", ktls: $3}
backends:
  - {name: mock, url: "http://127.0.0.1:19941/v1", models: ["mock-small"]}
YAML
	"$build/sluiced" -c "$d/$1.yaml" 2>"$d/$1.err" &
	pids="$pids $!"
	echo $! >"$d/$1.pid"
}
start_sluiced ktls 19942 true
start_sluiced user 19943 false
for port in 19942 19943; do
	for _ in $(seq 100); do
		curl -s --cacert "$d/cert.pem" "https://localhost:$port/healthz" >/dev/null 2>&1 && break
		sleep 0.1
	done
done

cpu_ns() {	# every thread's run time, from schedstat
	cat /proc/"$1"/task/*/schedstat | awk '{ s += $1 } END { printf "%.0f\n", s }'
}
body='{"model":"mock-small","stream":true,"messages":[{"role":"user","content":"a long answer please"}]}'
per_request_us() {	# name port
	pid=$(cat "$d/$1.pid")
	# warm-up, and the size of one response
	curl -s -N --cacert "$d/cert.pem" --tlsv1.2 --tls-max 1.2 "https://localhost:$2/v1/chat/completions" \
		-d "$body" -H 'x-mock-tokens: 340' -o "$d/$1.out"
	# One curl, one kept-alive connection: the handshake is paid once and
	# the figure is the data path's.
	urls=$(i=0; while [ $i -lt "$n" ]; do
		echo "https://localhost:$2/v1/chat/completions"; i=$((i + 1)); done)
	before=$(cpu_ns "$pid")
	# shellcheck disable=SC2086  # one argument per URL
	curl -s -N --cacert "$d/cert.pem" --tlsv1.2 --tls-max 1.2 -d "$body" \
		-H 'x-mock-tokens: 340' $urls >/dev/null || exit 1
	after=$(cpu_ns "$pid")
	echo $(((after - before) / n / 1000))
}
# Three alternating rounds, medians: one round is noisy under emulation.
median() { sort -n | sed -n 2p; }
ks="" us=""
for _ in 1 2 3; do
	ks="$ks $(per_request_us ktls 19942)"
	us="$us $(per_request_us user 19943)"
done
k=$(echo $ks | tr ' ' '\n' | median)
u=$(echo $us | tr ' ' '\n' | median)
echo "ktls-bench: rounds ktls_us:$ks userspace_us:$us"
size=$(wc -c <"$d/ktls.out")
modes=$(curl -s http://127.0.0.1:19952/metrics | grep '^sluice_tls_connections_total' | tr '\n' ' ')
echo "ktls-bench: requests=$n response_bytes=$size ktls_us=$k userspace_us=$u ratio=$(awk -v a="$k" -v b="$u" 'BEGIN { printf "%.2f", a / b }')"
echo "ktls-bench: modes of the kTLS instance: $modes"
