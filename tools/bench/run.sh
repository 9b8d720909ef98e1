#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# sluice benchmark: wrk against mockllm directly, and through nginx, haproxy
# and sluiced, for each worker count, all in one run so that only ratios
# measured together are compared (the machine is shared and noisy).
#
#   tools/bench/run.sh [BUILD_DIR]          (what `make bench` runs)
#
# Per target and worker count:
#   - non-stream (chat.lua) and stream (stream.lua) requests, each measured
#     twice: wrk -t2 -c64 for requests/s, and wrk -t1 -c1 --latency for p50/p99;
#     every measurement is preceded by a WARMUP-second wrk run;
#   - the proxy's CPU time per request: utime+stime from /proc/PID/stat of its
#     processes (nginx master+workers, haproxy, sluiced) around the 64-connection
#     run, divided by the requests wrk completed;
#   - sluiced only: VmRSS idle after start, and with IDLE_CONNS idle keep-alive
#     client connections held open (tools/bench/idle_conns.py), in an instance
#     of its own before the load runs.
# Prints a table and writes RESULTS (default tools/bench/results.md) with the
# machine facts and the ratios the project targets.  Exits 1 when any run
# saw a non-2xx response or a socket error.
#
# Environment:
#   DUR=5              seconds per measurement
#   WARMUP=1           seconds of warm-up before each measurement
#   WORKERS="1 2"      worker counts (nginx worker_processes, haproxy nbthread,
#                      sluiced workers)
#   TARGETS="direct nginx haproxy sluiced"
#   IDLE_CONNS=10000   idle client connections for the sluiced memory test (0: skip)
#   QUICK=1            smoke run: DUR=1, WORKERS=1, results in BUILD_DIR/bench-results-quick.md
#   RESULTS=FILE       where to write the markdown report
#
# Everything listens on 127.0.0.1 only; every process started here is killed
# on exit and the temporary directory removed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BENCH=$ROOT/tools/bench
BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
SLUICED=$BUILD/sluiced
MOCKLLM=$BUILD/mockllm

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
	DUR=${DUR:-1}
	WORKERS=${WORKERS:-1}
	RESULTS=${RESULTS:-$BUILD/bench-results-quick.md}
fi
DUR=${DUR:-5}
WARMUP=${WARMUP:-1}
WORKERS=${WORKERS:-1 2}
TARGETS=${TARGETS:-direct nginx haproxy sluiced}
IDLE_CONNS=${IDLE_CONNS:-10000}
RESULTS=${RESULTS:-$BENCH/results.md}
MOCK_THREADS=2
CONNS=64
PATH_CHAT=/v1/chat/completions

# The project's targets (sluiced against haproxy, measured in the same run).
T_CPU_RATIO=1.0       # sluiced CPU/req / haproxy CPU/req  <=
G_CPU_US=8            # sluiced CPU/req, microseconds      <=
T_RPS_RATIO=1.0       # sluiced req/s / haproxy req/s      >=
G_RPS_RATIO=1.2
T_ADDED_P50_US=15     # sluiced p50 - direct p50 at 1 connection, us  <=
T_IDLE_RSS_MIB=16     # sluiced VmRSS after start           <=
T_CONNS_RSS_MIB=64    # extra VmRSS with IDLE_CONNS idle connections  <=

log() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- processes

PIDS=()		# everything started here (and nginx's workers), killed on exit
TMP=

track() { PIDS+=("$@"); }
untrack() {
	local keep=() p q drop
	for p in "${PIDS[@]}"; do
		drop=0
		for q in "$@"; do [ "$p" = "$q" ] && drop=1; done
		[ $drop = 1 ] || keep+=("$p")
	done
	PIDS=("${keep[@]}")
}

# Alive and not a zombie.
alive() {
	local st
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[ -n "$st" ] && [ "$st" != Z ]
}

# stop PID...: SIGTERM, up to 5 s of grace, then SIGKILL; reaps our children.
stop() {
	local p i
	for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "$@"; do
		for ((i = 0; i < 50; i++)); do alive "$p" || break; sleep 0.1; done
		if alive "$p"; then
			log "pid $p ignored SIGTERM; killing it"
			kill -KILL "$p" 2>/dev/null || true
		fi
		wait "$p" 2>/dev/null || true
	done
	untrack "$@"
}

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	if [ ${#PIDS[@]} -gt 0 ]; then
		stop "${PIDS[@]}"
	fi
	[ -n "$TMP" ] && rm -rf "$TMP"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- helpers

need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found (tools/deps.sh bench installs it)"; }

# A free loopback TCP port (bound and released; used at once).
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT PID NAME LOGFILE: until PORT accepts, or PID dies (5 s at most).
wait_port() {
	local port=$1 pid=$2 name=$3 logf=$4 i
	for ((i = 0; i < 100; i++)); do
		if ! alive "$pid"; then
			cat "$logf" >&2 2>/dev/null || true
			die "$name exited during start-up"
		fi
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		sleep 0.05
	done
	cat "$logf" >&2 2>/dev/null || true
	die "$name did not listen on 127.0.0.1:$port within 5 s"
}

# Sum of utime+stime, in clock ticks, over the given processes (all threads).
cpu_ticks() {
	local p sum=0 t
	for p in "$@"; do
		t=$(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}') ||
			die "cannot read /proc/$p/stat"
		sum=$((sum + t))
	done
	echo "$sum"
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

# wrk duration ("123.45us", "1.20ms", "2.00s", "1.00m") in microseconds.
to_us() {
	awk -v v="$1" 'BEGIN {
		f = 0
		if (v ~ /us$/) f = 1; else if (v ~ /ms$/) f = 1000
		else if (v ~ /s$/) f = 1000000; else if (v ~ /m$/) f = 60000000
		else if (v ~ /h$/) f = 3600000000
		sub(/[a-z]+$/, "", v)
		if (f == 0 || v == "") { print "nan"; exit }
		printf "%.1f", v * f
	}'
}

calc() { awk "BEGIN { printf \"%s\", $1 }"; }

# ---------------------------------------------------------------- targets

TARGET_PORT=
TARGET_PIDS=()		# the processes whose CPU time is the proxy's
TARGET_MAIN=		# the process to stop

start_mockllm() {
	local i
	"$MOCKLLM" --listen 127.0.0.1:0 --threads "$MOCK_THREADS" 2>"$TMP/mockllm.err" &
	MOCK_PID=$!
	track "$MOCK_PID"
	MOCK_PORT=
	for ((i = 0; i < 100; i++)); do
		MOCK_PORT=$(sed -n 's/^mockllm: listening on .*:\([0-9][0-9]*\)$/\1/p' "$TMP/mockllm.err" | head -1)
		[ -n "$MOCK_PORT" ] && break
		alive "$MOCK_PID" || { cat "$TMP/mockllm.err" >&2; die "mockllm exited during start-up"; }
		sleep 0.05
	done
	[ -n "$MOCK_PORT" ] || { cat "$TMP/mockllm.err" >&2; die "mockllm printed no listening address"; }
	wait_port "$MOCK_PORT" "$MOCK_PID" mockllm "$TMP/mockllm.err"
}

start_direct() {
	TARGET_PORT=$MOCK_PORT
	TARGET_PIDS=()
	TARGET_MAIN=
}

start_nginx() {
	local n=$1 d=$TMP/nginx-$1 p kids=()
	mkdir -p "$d/tmp"
	TARGET_PORT=$(free_port)
	cat >"$d/nginx.conf" <<EOF
# sluice bench: nginx as a keep-alive reverse proxy in front of mockllm.
worker_processes $n;
worker_rlimit_nofile 20000;
pid $d/nginx.pid;
error_log $d/error.log warn;
events {
    worker_connections 10000;
}
http {
    access_log off;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    client_body_buffer_size 64k;     # request bodies stay in memory
    client_max_body_size 8m;
    keepalive_timeout 60s;
    keepalive_requests 1000000;      # like haproxy and sluiced: no per-connection cap
    upstream mock {
        server 127.0.0.1:$MOCK_PORT;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$TARGET_PORT;
        location / {
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
}
EOF
	nginx -e "$d/error.log" -p "$d/" -c "$d/nginx.conf" -g 'daemon off;' 2>"$d/stderr.log" &
	TARGET_MAIN=$!
	track "$TARGET_MAIN"
	wait_port "$TARGET_PORT" "$TARGET_MAIN" nginx "$d/error.log"
	# The master forks the workers; count them all (and kill them on exit).
	TARGET_PIDS=("$TARGET_MAIN")
	for ((p = 0; p < 50; p++)); do
		kids=(); read -r -a kids <"/proc/$TARGET_MAIN/task/$TARGET_MAIN/children" || true
		[ ${#kids[@]} -ge "$n" ] && break
		sleep 0.05
	done
	[ ${#kids[@]} -ge "$n" ] || die "nginx started ${#kids[@]} of $n workers"
	TARGET_PIDS+=("${kids[@]}")
	track "${kids[@]}"
}

start_haproxy() {
	local n=$1 d=$TMP/haproxy-$1
	mkdir -p "$d"
	TARGET_PORT=$(free_port)
	cat >"$d/haproxy.cfg" <<EOF
# sluice bench: haproxy in front of mockllm; no 'log' line, so no logging.
global
    nbthread $n
    maxconn 4096
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
frontend bench
    bind 127.0.0.1:$TARGET_PORT
    default_backend mock
backend mock
    server mock1 127.0.0.1:$MOCK_PORT
EOF
	haproxy -c -q -f "$d/haproxy.cfg" >"$d/check.log" 2>&1 || { cat "$d/check.log" >&2; die "haproxy config rejected"; }
	haproxy -db -f "$d/haproxy.cfg" >"$d/haproxy.log" 2>&1 &
	TARGET_MAIN=$!
	track "$TARGET_MAIN"
	wait_port "$TARGET_PORT" "$TARGET_MAIN" haproxy "$d/haproxy.log"
	TARGET_PIDS=("$TARGET_MAIN")
}

start_sluiced() {
	local n=$1 d=$TMP/sluiced-$1
	mkdir -p "$d"
	TARGET_PORT=$(free_port)
	cat >"$d/sluice.yaml" <<EOF
# sluice bench: sluiced in front of mockllm.
listen: "127.0.0.1:$TARGET_PORT"
workers: $n
log_level: warn
access_log: "off"
# The data plane alone, like nginx and haproxy; and the bench must not
# leave maps pinned under the machine's default pin root.
kernel: {enabled: false}
limits:
  max_connections: $((IDLE_CONNS + 2000))
backends:
  - name: mock
    url: "http://127.0.0.1:$MOCK_PORT/v1"
    models: ["*"]
    max_idle_connections: 64
EOF
	"$SLUICED" -c "$d/sluice.yaml" --check >"$d/check.log" 2>&1 || { cat "$d/check.log" >&2; die "sluiced config rejected"; }
	"$SLUICED" -c "$d/sluice.yaml" >"$d/sluiced.log" 2>&1 &
	TARGET_MAIN=$!
	track "$TARGET_MAIN"
	wait_port "$TARGET_PORT" "$TARGET_MAIN" sluiced "$d/sluiced.log"
	TARGET_PIDS=("$TARGET_MAIN")
}

stop_target() {
	[ ${#TARGET_PIDS[@]} -gt 0 ] && stop "${TARGET_PIDS[@]}"
	TARGET_PIDS=()
	TARGET_MAIN=
}

# ---------------------------------------------------------------- checks

BODY_CHAT=
BODY_STREAM=

# The request bodies, for a curl check of every target before it is measured.
read_bodies() {
	BODY_CHAT=$(sed -n "s/^wrk\.body *= *'\(.*\)' *$/\1/p" "$BENCH/chat.lua" | head -1)
	if [ -n "$BODY_CHAT" ]; then
		BODY_STREAM=$(printf '%s' "$BODY_CHAT" | sed 's/}[[:space:]]*$/,"stream":true}/')
	else
		log "warning: cannot read wrk.body from chat.lua; skipping the curl checks"
	fi
}

# One non-stream and one stream request through the target: 200, JSON with
# choices; the stream as text/event-stream ending in "data: [DONE]".
check_target() {
	local name=$1 url=http://127.0.0.1:$TARGET_PORT$PATH_CHAT code out=$TMP/check.out
	[ -n "$BODY_CHAT" ] || return 0
	code=$(curl -sS -o "$out" -w '%{http_code}' --max-time 10 -H 'Content-Type: application/json' \
		--data-binary "$BODY_CHAT" "$url") || die "$name: curl failed"
	if [ "$code" != 200 ] || ! grep -q '"choices"' "$out"; then
		head -c 500 "$out" >&2; echo >&2; die "$name: non-stream check got HTTP $code"
	fi
	code=$(curl -sS -N -o "$out" -w '%{http_code} %{content_type}' --max-time 10 \
		-H 'Content-Type: application/json' --data-binary "$BODY_STREAM" "$url") ||
		die "$name: curl (stream) failed"
	case $code in "200 text/event-stream"*) ;; *)
		head -c 500 "$out" >&2; echo >&2; die "$name: stream check got '$code'" ;;
	esac
	grep -q '^data: \[DONE\]' "$out" || die "$name: the stream did not end with data: [DONE]"
}

# ---------------------------------------------------------------- wrk

declare -A R		# R[workers,target,key]
FAILURES=()

# run_wrk OUT THREADS CONNS SECONDS SCRIPT [--latency]: wrk in the background
# (so an interrupt still reaches cleanup), waited for.
run_wrk() {
	local out=$1 t=$2 c=$3 s=$4 script=$5 pid
	shift 5
	wrk -t"$t" -c"$c" -d"${s}s" "$@" -s "$BENCH/$script" \
		"http://127.0.0.1:$TARGET_PORT$PATH_CHAT" >"$out" 2>&1 &
	pid=$!
	track "$pid"
	wait "$pid" || { cat "$out" >&2; untrack "$pid"; die "wrk failed"; }
	untrack "$pid"
}

# Non-2xx responses and socket errors of one wrk output; loud when non-zero.
# Sets WRK_NON2XX and WRK_ERRS ("connect C, read R, write W, timeout T").
check_wrk() {
	local out=$1 what=$2
	WRK_NON2XX=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out")
	WRK_NON2XX=${WRK_NON2XX:-0}
	WRK_ERRS=$(sed -n 's/^ *Socket errors: *//p' "$out")
	WRK_ERRS=${WRK_ERRS:-connect 0, read 0, write 0, timeout 0}
	local nerr
	nerr=$(printf '%s\n' "$WRK_ERRS" | tr -c '0-9\n' ' ' | awk '{s = 0; for (i = 1; i <= NF; i++) s += $i; print s}')
	if [ "$WRK_NON2XX" != 0 ] || [ "$nerr" != 0 ]; then
		FAILURES+=("$what: non-2xx $WRK_NON2XX; socket errors: $WRK_ERRS")
		printf '\nbench: FAIL ===== %s: %s non-2xx responses; socket errors: %s =====\n\n' \
			"$what" "$WRK_NON2XX" "$WRK_ERRS" >&2
	fi
}

wrk_requests() { awk '/ requests in / {print $1; exit}' "$1"; }
wrk_rps() { awk '/^Requests\/sec:/ {print $2}' "$1"; }
wrk_pct() { awk -v p="$2" '$1 == p {print $2; exit}' "$1"; }

# measure W TARGET KIND(chat|stream): the 64-connection run with CPU time,
# then the 1-connection latency run, each after a warm-up.
measure() {
	local w=$1 tgt=$2 kind=$3 script=$3.lua out cpu0 cpu1 m0 m1 reqs p50 p99
	local tag="w$w $tgt $kind"

	out=$TMP/wrk-$w-$tgt-$kind-c$CONNS.txt
	run_wrk "$out.warm" 2 "$CONNS" "$WARMUP" "$script"
	check_wrk "$out.warm" "$tag warm-up c$CONNS"
	cpu0=0; [ ${#TARGET_PIDS[@]} -gt 0 ] && cpu0=$(cpu_ticks "${TARGET_PIDS[@]}")
	m0=$(cpu_ticks "$MOCK_PID")
	run_wrk "$out" 2 "$CONNS" "$DUR" "$script" --latency
	cpu1=0; [ ${#TARGET_PIDS[@]} -gt 0 ] && cpu1=$(cpu_ticks "${TARGET_PIDS[@]}")
	m1=$(cpu_ticks "$MOCK_PID")
	check_wrk "$out" "$tag c$CONNS"
	reqs=$(wrk_requests "$out")
	if [ -z "$reqs" ] || [ "$reqs" -eq 0 ]; then cat "$out" >&2; die "$tag: wrk completed no requests"; fi
	R[$w,$tgt,$kind,rps]=$(wrk_rps "$out")
	R[$w,$tgt,$kind,reqs]=$reqs
	R[$w,$tgt,$kind,errs]="$WRK_NON2XX / $WRK_ERRS"
	R[$w,$tgt,$kind,non2xx]=$WRK_NON2XX
	R[$w,$tgt,$kind,sockerr]=$WRK_ERRS
	if [ ${#TARGET_PIDS[@]} -gt 0 ]; then
		R[$w,$tgt,$kind,cpu]=$(calc "sprintf(\"%.2f\", ($cpu1 - $cpu0) * 1000000 / $CLK_TCK / $reqs)")
	else
		R[$w,$tgt,$kind,cpu]=-
	fi
	R[$w,$tgt,$kind,mockcpu]=$(calc "sprintf(\"%.2f\", ($m1 - $m0) * 1000000 / $CLK_TCK / $reqs)")
	[ "$tgt" = sluiced ] && R[$w,$tgt,$kind,rss_kib]=$(rss_kib "$TARGET_MAIN")

	out=$TMP/wrk-$w-$tgt-$kind-c1.txt
	run_wrk "$out.warm" 1 1 "$WARMUP" "$script"
	check_wrk "$out.warm" "$tag warm-up c1"
	run_wrk "$out" 1 1 "$DUR" "$script" --latency
	check_wrk "$out" "$tag c1"
	p50=$(wrk_pct "$out" 50%)
	p99=$(wrk_pct "$out" 99%)
	if [ -z "$p50" ] || [ -z "$p99" ]; then cat "$out" >&2; die "$tag: no latency distribution in wrk's output"; fi
	R[$w,$tgt,$kind,p50]=$(to_us "$p50")
	R[$w,$tgt,$kind,p99]=$(to_us "$p99")
	R[$w,$tgt,$kind,rps1]=$(wrk_rps "$out")
	if [ "$WRK_NON2XX" != 0 ]; then R[$w,$tgt,$kind,non2xx]=$((R[$w,$tgt,$kind,non2xx] + WRK_NON2XX)); fi

	printf '  %-8s %-6s c%-3s %10s req/s  cpu %6s us/req (mock %s)  |  c1: p50 %7s us  p99 %8s us  | non-2xx %s; socket errors: %s\n' \
		"$tgt" "$kind" "$CONNS" "${R[$w,$tgt,$kind,rps]}" "${R[$w,$tgt,$kind,cpu]}" \
		"${R[$w,$tgt,$kind,mockcpu]}" "${R[$w,$tgt,$kind,p50]}" "${R[$w,$tgt,$kind,p99]}" \
		"${R[$w,$tgt,$kind,non2xx]}" "${R[$w,$tgt,$kind,sockerr]}"
}

# sluiced's memory, in an instance of its own before any load: idle VmRSS,
# then VmRSS with IDLE_CONNS idle keep-alive clients.
measure_memory() {
	local w=$1 idle conns pid i out=$TMP/idle-$1.out err=$TMP/idle-$1.err
	start_sluiced "$w"
	sleep 0.5
	idle=$(rss_kib "$TARGET_MAIN")
	R[$w,mem,idle]=$idle
	if [ "$IDLE_CONNS" -gt 0 ]; then
		python3 "$BENCH/idle_conns.py" "127.0.0.1:$TARGET_PORT" "$IDLE_CONNS" >"$out" 2>"$err" &
		pid=$!
		track "$pid"
		for ((i = 0; i < 1200; i++)); do
			grep -q '^ready' "$out" && break
			alive "$pid" || { cat "$err" >&2; die "idle_conns.py failed against sluiced"; }
			alive "$TARGET_MAIN" || { cat "$TMP/sluiced-$w/sluiced.log" >&2; die "sluiced died under $IDLE_CONNS idle connections"; }
			sleep 0.1
		done
		grep -q '^ready' "$out" || die "idle_conns.py did not open $IDLE_CONNS connections within 120 s"
		sleep 1
		conns=$(rss_kib "$TARGET_MAIN")
		R[$w,mem,conns]=$conns
		R[$w,mem,fds]=$(find "/proc/$TARGET_MAIN/fd" -mindepth 1 -maxdepth 1 | wc -l)
		alive "$pid" || { cat "$err" >&2; die "idle_conns.py exited while holding connections"; }
		stop "$pid"
		if [ -s "$err" ]; then log "idle_conns.py: $(cat "$err")"; fi
		printf '  sluiced  memory: idle VmRSS %s KiB; with %s idle connections %s KiB (+%s KiB, %s fds)\n' \
			"$idle" "$IDLE_CONNS" "$conns" "$((conns - idle))" "${R[$w,mem,fds]}"
	else
		printf '  sluiced  memory: idle VmRSS %s KiB\n' "$idle"
	fi
	[ -s "$TMP/sluiced-$w/sluiced.log" ] && log "sluiced said: $(head -c 2000 "$TMP/sluiced-$w/sluiced.log")"
	stop_target
}

# ---------------------------------------------------------------- run

need wrk; need python3; need curl
for tgt in $TARGETS; do
	case $tgt in
	direct) ;;
	nginx) need nginx ;;
	haproxy) need haproxy ;;
	sluiced) [ -x "$SLUICED" ] || die "$SLUICED not built (make $SLUICED)" ;;
	*) die "unknown target '$tgt' (direct nginx haproxy sluiced)" ;;
	esac
done
[ -x "$MOCKLLM" ] || die "$MOCKLLM not built (make $MOCKLLM)"
for f in chat.lua stream.lua idle_conns.py; do [ -r "$BENCH/$f" ] || die "$BENCH/$f missing"; done

TMP=$(mktemp -d /tmp/sluice-bench.XXXXXX)
CLK_TCK=$(getconf CLK_TCK)
read_bodies

# Room for wrk, the proxies and IDLE_CONNS client sockets in this process tree.
nofile=$((IDLE_CONNS + 4096)); [ $nofile -lt 20000 ] && nofile=20000
ulimit -n "$nofile" 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "DUR=${DUR}s WARMUP=${WARMUP}s WORKERS='$WORKERS' TARGETS='$TARGETS' IDLE_CONNS=$IDLE_CONNS; temp dir $TMP"

for w in $WORKERS; do
	printf '\n== %s worker(s) / nginx worker_processes / haproxy nbthread: %s\n' "$w" "$w"
	start_mockllm
	for tgt in $TARGETS; do
		if [ "$tgt" = sluiced ] && [ -z "${R[$w,mem,idle]:-}" ]; then
			measure_memory "$w"
		fi
		"start_$tgt" "$w"
		check_target "$tgt"
		measure "$w" "$tgt" chat
		measure "$w" "$tgt" stream
		if [ "$tgt" = sluiced ]; then
			R[$w,mem,hwm]=$(hwm_kib "$TARGET_MAIN")
			if [ -s "$TMP/sluiced-$w/sluiced.log" ]; then
				log "sluiced said under load: $(head -c 2000 "$TMP/sluiced-$w/sluiced.log")"
				R[$w,sluiced,log]=$(wc -l <"$TMP/sluiced-$w/sluiced.log")
			fi
		fi
		stop_target
	done
	stop "$MOCK_PID"
done

# ---------------------------------------------------------------- report

has() { [[ " $TARGETS " == *" $1 "* ]]; }
passmiss() { if awk "BEGIN { exit !($1) }"; then echo PASS; else echo MISS; fi; }

report() {
	local w kind tgt label v ref
	echo "# sluice benchmark results"
	echo
	if [ "$QUICK" = 1 ]; then echo "**QUICK smoke run: DUR=${DUR}s; numbers are indicative only.**"; echo; fi
	echo "Generated by \`tools/bench/run.sh\` (\`make bench\`).  All processes share one"
	echo "machine and its cores with wrk (2 threads) and mockllm ($MOCK_THREADS threads), so the absolute"
	echo "numbers are low and noisy; compare only the ratios measured in the same run."
	echo
	echo "## Machine"
	echo
	echo "| | |"
	echo "|---|---|"
	echo "| date | $(date -u '+%Y-%m-%d %H:%M:%S UTC') |"
	echo "| nproc | $(nproc) |"
	echo "| CPU | $(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo) |"
	echo "| kernel | $(uname -sr) |"
	echo "| load average at start | $LOAD_START |"
	echo "| sluiced | $("$SLUICED" -V 2>&1 | head -1) |"
	echo "| git commit | $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$( [ -n "$(git -C "$ROOT" status --porcelain 2>/dev/null)" ] && echo ' (with uncommitted changes)') |"
	has nginx && echo "| nginx | $(nginx -v 2>&1 | sed 's/^nginx version: //') |"
	has haproxy && echo "| haproxy | $(haproxy -v 2>&1 | head -1 | awk '{print $3}') |"
	echo "| wrk | $(wrk -v 2>&1 | head -1 | awk '{print $2}') |"
	echo "| run | DUR=${DUR}s per measurement, ${WARMUP}s warm-up before each; $CONNS connections: \`wrk -t2 -c$CONNS\`; latency: \`wrk -t1 -c1 --latency\` |"
	echo
	echo "## Raw results"
	echo
	echo "req/s and CPU at $CONNS connections; p50/p99 at 1 connection, in µs.  CPU µs/req is the"
	echo "proxy's utime+stime (all its processes and threads) over the $CONNS-connection run ÷"
	echo "completed requests; mock µs/req is mockllm's, for reference."
	echo
	echo "| workers | target | kind | req/s | CPU µs/req | mock µs/req | p50 µs | p99 µs | non-2xx | socket errors |"
	echo "|---:|---|---|---:|---:|---:|---:|---:|---:|---|"
	for w in $WORKERS; do
		for kind in chat stream; do
			for tgt in $TARGETS; do
				echo "| $w | $tgt | $kind | ${R[$w,$tgt,$kind,rps]} | ${R[$w,$tgt,$kind,cpu]} | ${R[$w,$tgt,$kind,mockcpu]} | ${R[$w,$tgt,$kind,p50]} | ${R[$w,$tgt,$kind,p99]} | ${R[$w,$tgt,$kind,non2xx]} | ${R[$w,$tgt,$kind,sockerr]} |"
			done
		done
	done
	echo
	if has sluiced && { has haproxy || has direct; }; then
		echo "## Targets"
		echo
		echo "The reference column gives the same figure for the other proxies, to tell"
		echo "the machine's noise (e.g. wake-up latency at 1 connection) from sluiced's own cost."
		if has direct; then
			v=$(for w in $WORKERS; do for kind in chat stream; do echo "${R[$w,direct,$kind,p50]}"; done; done |
				sort -n | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%s–%s", lo, hi}')
			echo "At 1 connection every hop is a cross-CPU wake-up on a busy 2-CPU machine, so"
			echo "p50 is noisy: mockllm alone (direct) measured $v µs in this run."
		fi
		echo
		echo "| workers | kind | metric | value | target | result | goal | result | reference |"
		echo "|---:|---|---|---:|---|---|---|---|---|"
		for w in $WORKERS; do
			for kind in chat stream; do
				label=$([ $kind = chat ] && echo non-stream || echo stream)
				if has haproxy; then
					v=$(calc "sprintf(\"%.2f\", ${R[$w,sluiced,$kind,cpu]} / ${R[$w,haproxy,$kind,cpu]})")
					ref=
					has nginx && ref="nginx ÷ haproxy $(calc "sprintf(\"%.2f\", ${R[$w,nginx,$kind,cpu]} / ${R[$w,haproxy,$kind,cpu]})")"
					echo "| $w | $label | sluiced CPU/req ÷ haproxy CPU/req | $v | ≤ $T_CPU_RATIO | $(passmiss "$v <= $T_CPU_RATIO") | sluiced ≤ $G_CPU_US µs/req (${R[$w,sluiced,$kind,cpu]}) | $(passmiss "${R[$w,sluiced,$kind,cpu]} <= $G_CPU_US") | $ref |"
					v=$(calc "sprintf(\"%.2f\", ${R[$w,sluiced,$kind,rps]} / ${R[$w,haproxy,$kind,rps]})")
					has nginx && ref="nginx ÷ haproxy $(calc "sprintf(\"%.2f\", ${R[$w,nginx,$kind,rps]} / ${R[$w,haproxy,$kind,rps]})")"
					echo "| $w | $label | sluiced req/s ÷ haproxy req/s | $v | ≥ $T_RPS_RATIO | $(passmiss "$v >= $T_RPS_RATIO") | ≥ $G_RPS_RATIO | $(passmiss "$v >= $G_RPS_RATIO") | $ref |"
				fi
				if has direct; then
					v=$(calc "sprintf(\"%.1f\", ${R[$w,sluiced,$kind,p50]} - ${R[$w,direct,$kind,p50]})")
					ref=
					for tgt in haproxy nginx; do
						has $tgt && ref="$ref${ref:+, }$tgt $(calc "sprintf(\"%+.1f\", ${R[$w,$tgt,$kind,p50]} - ${R[$w,direct,$kind,p50]})")"
					done
					echo "| $w | $label | added p50 at 1 conn (sluiced − direct), µs | $v | ≤ $T_ADDED_P50_US | $(passmiss "$v <= $T_ADDED_P50_US") | | | $ref |"
				fi
			done
		done
		echo
	fi
	if has sluiced; then
		echo "## sluiced memory"
		echo
		echo "VmRSS of a fresh sluiced, idle after start, then with $IDLE_CONNS idle keep-alive client"
		echo "connections (each sent one GET /healthz; \`tools/bench/idle_conns.py\`), before any"
		echo "load; peak (VmHWM) of the separate instance that ran the load tests."
		echo
		echo "| workers | idle RSS MiB | target ≤ $T_IDLE_RSS_MIB | RSS with $IDLE_CONNS conns MiB | delta MiB | target ≤ $T_CONNS_RSS_MIB | fds open | peak RSS under load MiB |"
		echo "|---:|---:|---|---:|---:|---|---:|---:|"
		for w in $WORKERS; do
			local idle=${R[$w,mem,idle]} conns=${R[$w,mem,conns]:-} hwm=${R[$w,mem,hwm]:-}
			local idle_m conns_m delta_m hwm_m
			idle_m=$(calc "sprintf(\"%.1f\", $idle / 1024)")
			if [ -n "$conns" ]; then
				conns_m=$(calc "sprintf(\"%.1f\", $conns / 1024)")
				delta_m=$(calc "sprintf(\"%.1f\", ($conns - $idle) / 1024)")
			fi
			[ -n "$hwm" ] && hwm_m=$(calc "sprintf(\"%.1f\", $hwm / 1024)")
			echo "| $w | $idle_m | $(passmiss "$idle_m <= $T_IDLE_RSS_MIB") | ${conns_m:--} | ${delta_m:--} | $([ -n "$conns" ] && passmiss "$delta_m <= $T_CONNS_RSS_MIB" || echo -) | ${R[$w,mem,fds]:--} | ${hwm_m:--} |"
		done
		echo
	fi
	if [ ${#FAILURES[@]} -gt 0 ]; then
		echo "## FAILURES"
		echo
		for v in "${FAILURES[@]}"; do echo "- $v"; done
		echo
	fi
}

report_file=$TMP/report.md
report >"$report_file"
echo
cat "$report_file"
mkdir -p "$(dirname "$RESULTS")"
cp "$report_file" "$RESULTS"
# The XDP cost per packet (bpf_prog_test_run, needs root) joins the report.
if [ -x "$BUILD/xdpbench" ]; then
	RESULTS="$RESULTS" "$BENCH/xdp.sh" "$BUILD" || FAILURES+=("xdpbench failed")
fi
RESULTS="$RESULTS" "$BENCH/guard.sh" "$BUILD" || FAILURES+=("guardrails bench failed")
RESULTS="$RESULTS" "$BENCH/synflood.sh" "$BUILD" || FAILURES+=("SYN flood scenario failed")
RESULTS="$RESULTS" "$BENCH/tls.sh" "$BUILD" || FAILURES+=("TLS handshake bench failed")
RESULTS="$RESULTS" "$BENCH/auth.sh" "$BUILD" || FAILURES+=("identity and quota bench failed")
RESULTS="$RESULTS" "$BENCH/ktls.sh" "$BUILD" || FAILURES+=("kTLS bench in the VM failed")
RESULTS="$RESULTS" "$BENCH/restart.sh" "$BUILD" || FAILURES+=("rolling restart bench failed")
log "wrote $RESULTS in $(($(date +%s) - START)) s"
if [ ${#FAILURES[@]} -gt 0 ]; then
	printf '\nbench: FAILED: %d run(s) saw non-2xx responses or socket errors:\n' "${#FAILURES[@]}" >&2
	printf '  %s\n' "${FAILURES[@]}" >&2
	exit 1
fi
