#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `make run`: mockllm on 127.0.0.1:9000 and sluiced in front of it with
# config/sluice.example.yaml.  Ctrl-C stops both.
#   tools/run.sh BUILD_DIR [CONFIG]
set -euo pipefail
build=${1:?usage: tools/run.sh BUILD_DIR [CONFIG]}
config=${2:-config/sluice.example.yaml}
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

"$build/sluiced" --check -c "$config" >/dev/null
if port_busy 9000; then
	echo "run: 127.0.0.1:9000 is taken; is mockllm already running? using it" >&2
else
	"$build/mockllm" --listen 127.0.0.1:9000 --ttft-ms 50 --tps 200 &
	pids+=($!)
fi
"$build/sluiced" -c "$config" &
pids+=($!)

sluiced=$!
ready=
for _ in $(seq 50); do
	kill -0 "$sluiced" 2>/dev/null || break
	curl -fs http://127.0.0.1:8080/readyz >/dev/null 2>&1 && { ready=1; break; }
	sleep 0.1
done
# Say so when sluiced did not come up (its own error is above), rather
# than print the banner over a dead daemon.
if [ -z "$ready" ]; then
	echo "run: sluiced did not become ready on 127.0.0.1:8080 (see its error above)" >&2
	exit 1
fi
cat <<MSG

sluice is listening on http://127.0.0.1:8080 (backend: mockllm on 127.0.0.1:9000)
  curl -s http://127.0.0.1:8080/v1/chat/completions -H 'content-type: application/json' \\
    -d '{"model":"mock-small","messages":[{"role":"user","content":"hi"}]}'
  curl -s http://127.0.0.1:9090/metrics       (the admin listener)
OpenAI SDKs: base_url = http://127.0.0.1:8080/v1 (any api key).   Ctrl-C to stop.

MSG
wait -n "${pids[@]}"
