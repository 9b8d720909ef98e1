#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# kTLS on upstream (backend) connections, in the guest (Debian 6.1, tls
# module):
#   vm-test/run.sh -- vm-test/ktls_upstream.sh BUILD_DIR
# sluiced (plain listener) in front of https backends: Python's TLS server
# of tests/integration/test_tls_upstream.py relaying to mockllm, one that
# speaks only TLS 1.2, one only TLS 1.3, and three that send close_notify
# after each response (TLS 1.2 and 1.3 with kept-alive responses, TLS 1.2
# with responses that close_notify ends).  The kernel's counters, sluiced's
# upstream mode counter and the backends' own account of each connection
# must show: TLS 1.2 on kernel TLS both ways, TLS 1.3 sending on kernel
# TLS with the backend's session tickets read (later connections resume),
# close_notify on a kernel-TLS receive taken as the connection's end, and
# every response byte for byte as mockllm sends it.  One line per check,
# "ok NAME" or "FAIL NAME: why"; exit 0 only if all hold.
build=${1:?usage: vm-test/ktls_upstream.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=vm-test/ktls_lib.sh
. "$here/ktls_lib.sh"

mock_port=19941
gw_port=19942
gw="http://127.0.0.1:$gw_port"
admin="http://127.0.0.1:$((gw_port + 10))"	# /metrics
mode() { metric_of "$admin" "sluice_upstream_tls_connections_total{mode=\"$1\"}"; }

"$build/mockllm" --listen "127.0.0.1:$mock_port" 2>"$d/mock.err" &
pids="$pids $!"
# One Python process serves every backend NAME:PORT:options; each ended
# connection is one line "name=N version=V resumed=0|1 ..." in
# $d/NAME.events, and $d/ready appears once all of them listen.
backends="tls12:19943:max=1.2 tls13:19944:min=1.3 cn12:19945:max=1.2:after=close_notify
cn13:19946:min=1.3:after=close_notify eof12:19947:max=1.2:after=close_notify_eof"
# shellcheck disable=SC2086  # one word per backend
python3 "$here/../tests/integration/test_tls_upstream.py" serve --backend-port "$mock_port" \
	--cert "$d/srv.pem" --key "$d/srv.key" --dir "$d" $backends 2>"$d/backends.err" &
pids="$pids $!"
{
	printf 'listen: "127.0.0.1:%s"\nworkers: 1\naccess_log: off\n' "$gw_port"
	printf 'admin: {listen: "127.0.0.1:%s"}\n' "$((gw_port + 10))"
	printf 'kernel: {enabled: false}\nbackends:\n'
	# The checks count connections: a pooled one must outlive the gaps
	# between requests, which the emulated guest makes seconds long (the
	# 4s default idle_timeout could close it in between).
	for b in $backends; do
		name=${b%%:*} port=${b#*:} port=${port%%:*}
		printf '  - {name: %s, url: "https://127.0.0.1:%s/v1", ca_file: "%s", models: ["%s"], idle_timeout: 60s}\n' \
			"$name" "$port" "$d/ca.pem" "$name"
	done
} >"$d/sluice.yaml"
"$build/sluiced" -c "$d/sluice.yaml" 2>"$d/sluiced.err" &
pids="$pids $!"
wait_for_url "$gw/healthz" || fail startup "$(tail -3 "$d/sluiced.err")"
for _ in $(seq 200); do
	[ -e "$d/ready" ] && break
	sleep 0.1
done
[ -e "$d/ready" ] || fail startup "backends: $(tail -3 "$d/backends.err")"

# chat MODEL STREAM TOKENS BASE OUT: one request; prints the status.
chat() {
	body="{\"model\":\"$1\",\"stream\":$2,\"messages\":[{\"role\":\"user\",\"content\":\"upstream ktls\"}]"
	[ "$2" = true ] && body="$body,\"stream_options\":{\"include_usage\":true}"
	curl -s -N "$4/v1/chat/completions" -d "$body}" -H "x-mock-tokens: $3" -o "$5" \
		-w '%{http_code}'
}
# same MODEL STREAM TOKENS WHAT: through sluiced as straight from mockllm.
same() {
	chat "$1" "$2" "$3" "http://127.0.0.1:$mock_port" "$d/direct" >/dev/null
	st=$(chat "$1" "$2" "$3" "$gw" "$d/via")
	if [ "$st" = 200 ] && cmp -s "$d/direct" "$d/via"; then
		ok "$4 byte-exact ($(wc -c <"$d/via") bytes)"
	else
		fail "$4" "status $st, $(wc -c <"$d/via") bytes vs $(wc -c <"$d/direct")"
	fi
}
# events NAME FIELD: that field of each ended connection, in one line.
events() {
	awk -v f="$2" '{ for (i = 1; i <= NF; i++) if (index($i, f "=") == 1)
		printf "%s%s", (n++ ? " " : ""), substr($i, length(f) + 2) } END { print "" }' \
		"$d/$1.events"
}
# wait_events NAME N: until N connections of NAME ended, 5 s at most.
wait_events() {
	for _ in $(seq 50); do
		[ "$(wc -l <"$d/$1.events")" -ge "$2" ] && return 0
		sleep 0.1
	done
	return 1
}
# rose NAME BEFORE AFTER WANT: a counter that must have risen by WANT.
rose() {
	if [ "$3" -eq $(($2 + $4)) ]; then
		ok "$1 $2 -> $3"
	else
		fail "$1" "$2 -> $3, want +$4"
	fi
}

# ---- TLS 1.2: the kernel encrypts and decrypts ----
tx0=$(stat_of TlsTxSw) rx0=$(stat_of TlsRxSw)
same tls12 false 3000 "TLS 1.2 upstream: response"
same tls12 true 300 "TLS 1.2 upstream: stream"
same tls12 true 20 "TLS 1.2 upstream: short stream on the kept-alive connection"
rose "TLS 1.2: one kernel-TLS send (TlsTxSw)" "$tx0" "$(stat_of TlsTxSw)" 1
rose "TLS 1.2: one kernel-TLS receive (TlsRxSw)" "$rx0" "$(stat_of TlsRxSw)" 1
[ "$(mode ktls)" = 1 ] && ok "TLS 1.2: sluiced counts mode ktls" ||
	fail "tls12 mode" "ktls=$(mode ktls) ktls_tx=$(mode ktls_tx) userspace=$(mode userspace)"

# ---- TLS 1.3: the kernel encrypts; OpenSSL 3.0 decrypts ----
tx0=$(stat_of TlsTxSw) rx0=$(stat_of TlsRxSw)
same tls13 false 3000 "TLS 1.3 upstream: response"
same tls13 true 300 "TLS 1.3 upstream: stream"
same tls13 false 10 "TLS 1.3 upstream: short response on the kept-alive connection"
rose "TLS 1.3: one kernel-TLS send (TlsTxSw)" "$tx0" "$(stat_of TlsTxSw)" 1
rose "TLS 1.3: no kernel-TLS receive (TlsRxSw)" "$rx0" "$(stat_of TlsRxSw)" 0
[ "$(mode ktls_tx)" = 1 ] && ok "TLS 1.3: sluiced counts mode ktls_tx" ||
	fail "tls13 mode" "ktls=$(mode ktls) ktls_tx=$(mode ktls_tx) userspace=$(mode userspace)"

# ---- close_notify after every kept-alive response ----
# TLS 1.3: the tickets each connection brings are read on the way (later
# connections resume); TLS 1.2: close_notify reaches a kernel-TLS receive
# (EIO, then OpenSSL reads it) on the pooled connection.
for v in 12 13; do
	for i in 1 2; do
		same "cn$v" false 200 "TLS 1.${v#1} close_notify backend: request $i"
		wait_events "cn$v" "$i"
	done
	closed=$(events "cn$v" gateway_closed) resumed=$(events "cn$v" resumed)
	if [ "$closed" = "1 1" ]; then
		ok "TLS 1.${v#1}: sluiced closed each connection after close_notify (waits: $(events "cn$v" close_wait_s) s)"
	else
		fail "cn$v close" "gateway_closed: $closed; $(cat "$d/cn$v.events")"
	fi
	if [ "$resumed" = "0 1" ]; then
		ok "TLS 1.${v#1}: the second connection resumed the first one's session"
	else
		fail "cn$v resume" "resumed: $resumed"
	fi
done
[ "$(mode ktls)" = 3 ] && [ "$(mode ktls_tx)" = 3 ] &&
	ok "close_notify backends: TLS 1.2 on kernel TLS both ways, TLS 1.3 sending" ||
	fail "cn modes" "ktls=$(mode ktls) ktls_tx=$(mode ktls_tx) userspace=$(mode userspace)"

# ---- a response whose end is close_notify, on a kernel-TLS receive ----
rx0=$(stat_of TlsRxSw)
same eof12 false 3000 "TLS 1.2: response ended by close_notify"
same eof12 false 30 "TLS 1.2: second response ended by close_notify"
wait_events eof12 2
rose "TLS 1.2 close-delimited: kernel-TLS receives (TlsRxSw)" "$rx0" "$(stat_of TlsRxSw)" 2

errors=$(curl -s "$admin/metrics" | grep -c '^sluice_upstream_errors_total{')
[ "$errors" = 0 ] && ok "no upstream errors counted" ||
	fail errors "$(curl -s "$admin/metrics" | grep '^sluice_upstream_errors_total{')"
[ "$(mode failed)" = 0 ] || fail handshakes "failed upstream TLS handshakes: $(mode failed)"
grep -E "error|warn" "$d/sluiced.err" | head -5
exit "$failed"
