#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# kTLS end to end, in the guest (Debian 6.1, tls module):
#   vm-test/run.sh -- vm-test/ktls.sh BUILD_DIR
# sluiced terminates TLS 1.2 and TLS 1.3 in front of mockllm; the kernel's
# own counters (/proc/net/tls_stat) and sluiced's per-connection mode
# counter must show kernel TLS at work, and responses (a stream included)
# must arrive byte for byte as mockllm sends them, also to slow readers.
# One line per check, "ok NAME" or "FAIL NAME: why"; exit 0 only if all
# hold.
build=${1:?usage: vm-test/ktls.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=vm-test/ktls_lib.sh
. "$here/ktls_lib.sh"
metric() { metric_of "http://127.0.0.1:$admin_port" "sluice_tls_connections_total{mode=\"$1\"}"; }

mock_port=19931
gw_port=19932
admin_port=19933
"$build/mockllm" --listen "127.0.0.1:$mock_port" 2>"$d/mock.err" &
pids="$pids $!"
cat >"$d/sluice.yaml" <<YAML
listen: "127.0.0.1:$gw_port"
workers: 1
access_log: off
kernel: {enabled: false}
admin: {listen: "127.0.0.1:$admin_port"}
tls: {cert: "$d/srv.pem", key: "$d/srv.key"}
backends:
  - name: mock
    url: "http://127.0.0.1:$mock_port/v1"
    models: ["mock-small"]
YAML
"$build/sluiced" -c "$d/sluice.yaml" 2>"$d/sluiced.err" &
pids="$pids $!"
wait_for_url "https://localhost:$gw_port/healthz" --cacert "$d/ca.pem"
grep -q "kernel TLS available" "$d/sluiced.err" && ok "sluiced says kernel TLS is available" ||
	fail startup "$(tail -3 "$d/sluiced.err")"

body='{"model":"mock-small","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"stream through ktls"}]}'
curl -s -N "http://127.0.0.1:$mock_port/v1/chat/completions" -d "$body" \
	-H 'x-mock-tokens: 64' -o "$d/direct"
tx0=$(stat_of TlsTxSw)
rx0=$(stat_of TlsRxSw)
for v in 1.2 1.3; do
	out="$d/via-$v"
	curl -s -N --cacert "$d/ca.pem" --tlsv"$v" --tls-max "$v" \
		"https://localhost:$gw_port/v1/chat/completions" -d "$body" \
		-H 'x-mock-tokens: 64' -o "$out" -w '%{http_code}' >"$out.code"
	if [ "$(cat "$out.code")" = 200 ] && cmp -s "$d/direct" "$out"; then
		ok "TLS $v stream byte-exact ($(wc -c <"$out") bytes)"
	else
		fail "tls$v" "status $(cat "$out.code"), $(wc -c <"$out") bytes vs $(wc -c <"$d/direct")"
	fi
done
tx1=$(stat_of TlsTxSw)
rx1=$(stat_of TlsRxSw)
if [ "$tx1" -ge $((tx0 + 2)) ]; then
	ok "kernel encrypts: TlsTxSw $tx0 -> $tx1"
else
	fail tls_stat "TlsTxSw $tx0 -> $tx1 (want +2: one per TLS connection)"
fi
echo "  TlsRxSw $rx0 -> $rx1 (kernel decryption; OpenSSL 3.0 offers it for TLS 1.2)"
ktls=$(metric ktls)
ktls_tx=$(metric ktls_tx)
user=$(metric userspace)
echo "  sluiced modes: ktls=${ktls:-?} ktls_tx=${ktls_tx:-?} userspace=${user:-?}"
if [ $((${ktls:-0} + ${ktls_tx:-0})) -ge 2 ]; then
	ok "sluiced counted kernel TLS connections"
else
	fail modes "ktls=${ktls:-?} ktls_tx=${ktls_tx:-?} userspace=${user:-?}"
fi
if [ "${ktls:-0}" -ge 1 ] && [ "$rx1" -gt "$rx0" ]; then
	ok "TLS 1.2: the kernel decrypts too (TlsRxSw rose)"
fi

# Slow readers on kernel TLS: io_uring sends of plaintext the kernel
# encrypts, from the output chain, while the relay appends behind them.
# The integration tests check every chunk and SSE event and compare the
# bytes with mockllm's own (one reader per round here: the guest is
# emulated); SLUICE_EXPECT_KTLS makes them also require
# that the kernel carried the sends.
if SLUICE_EXPECT_KTLS=1 SLUICE_SLOW_READER_ROUNDS=1 python3 "$here/../tests/integration/run.py" --build "$build" \
	--filter test_slow_reader.test_slow_reader_tls >"$d/slow.out" 2>&1; then
	ok "slow readers on kernel TLS: 15 MB streams and large bodies byte-exact"
else
	fail slow_readers "$(grep -E '^(FAIL|integration)' "$d/slow.out" | head -5)"
fi
exit "$failed"
