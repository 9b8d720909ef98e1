# SPDX-License-Identifier: Apache-2.0
# What the kTLS suites share (ktls.sh, ktls_upstream.sh), sourced:
#   . "$here/ktls_lib.sh"
# Result lines ("ok NAME", "FAIL NAME: why", $failed for the exit status),
# the kernel's TLS counters, a temp dir $d with a CA (ca.pem) and a
# certificate for localhost (srv.pem, srv.key), and cleanup of the
# processes whose pids the suite adds to $pids.
failed=0
ok() { echo "ok $1"; }
fail() { echo "FAIL $1: $2"; failed=1; }
# stat_of NAME: a counter of /proc/net/tls_stat (TlsTxSw, TlsRxSw, ...).
stat_of() { awk -v k="$1" '$1 == k { print $2 }' /proc/net/tls_stat; }
# metric_of URL SERIES [CURL_ARGS...]: one value of a /metrics page (URL is
# the admin listener's, where /metrics is served).
metric_of() {
	url=$1 series=$2
	shift 2
	curl -s "$@" "$url/metrics" | awk -v m="$series" '$1 == m { print $2 }'
}
# wait_for_url URL [CURL_ARGS...]: until it answers, 10 s at most.
wait_for_url() {
	url=$1
	shift
	for _ in $(seq 100); do
		curl -s -o /dev/null "$@" "$url" && return 0
		sleep 0.1
	done
	return 1
}

d=$(mktemp -d)
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$d"
}
trap cleanup EXIT INT TERM

modprobe tls || { fail ktls "modprobe tls"; exit 1; }

(cd "$d" &&
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
		-out ca.pem -days 2 -subj "/CN=sluice vm CA" &&
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout srv.key \
		-out srv.csr -subj "/CN=localhost" &&
	printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >ext.cnf &&
	openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem \
		-days 2 -extfile ext.cnf) >/dev/null 2>&1 || { fail pki "openssl"; exit 1; }
