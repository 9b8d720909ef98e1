#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Instructions per request of sluiced builds, under callgrind: a figure
that a noisy, shared machine does not move.

    tools/bench/instr.py SLUICED... [--requests N] [--stream] [--config-extra YAML]

Each binary runs under `valgrind --tool=callgrind` (one worker, kernel half
off, no access log) in front of one mockllm.  After a warm-up of N/4
keep-alive requests the counters are zeroed (`callgrind_control -z`), N
requests run, and `callgrind_control -d` dumps what they cost: start-up,
warm-up and exit stay out of the figure.  Prints one
line per binary; the first is the reference the others are compared with.
"""
import argparse
import http.client
import os
import re
import shutil
import subprocess
import sys
import tempfile

from benchlib import free_port, wait_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BODY = b'{"model":"mock-small","messages":[{"role":"user","content":"hello"}],"max_tokens":16}'
STREAM_BODY = BODY[:-1] + b',"stream":true}'


def send_requests(port, n, body):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for _ in range(n):
        conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            sys.exit("instr: status %d" % resp.status)
    conn.close()


def instructions(tmp, binary, mock_port, n, body, extra):
    port = free_port()
    cfg = os.path.join(tmp, "gw.yaml")
    with open(cfg, "w") as f:
        f.write('listen: "127.0.0.1:%d"\nworkers: 1\naccess_log: "off"\nlog_level: warn\n'
                'kernel: {enabled: false}\nbackends:\n  - name: m\n'
                '    url: "http://127.0.0.1:%d/v1"\n    models: ["mock-small"]\n%s'
                % (port, mock_port, extra))
    out = os.path.join(tmp, "cg.out")
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
                             binary, "-c", cfg],
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "vg.err"), "w"))
    try:
        wait_port(port, proc, binary, timeout=60.0)
        send_requests(port, max(n // 4, 1), body)
        subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        send_requests(port, n, body)
        subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finally:
        proc.kill()
        proc.wait()
    total = 0
    for path in os.listdir(tmp):
        if not path.startswith("cg.out."):
            continue
        for line in open(os.path.join(tmp, path)):
            if line.startswith("summary:") or line.startswith("totals:"):
                total += int(line.split()[1])
                break
        os.unlink(os.path.join(tmp, path))
    for path in os.listdir(tmp):
        if path.startswith("cg.out"):
            os.unlink(os.path.join(tmp, path))
    if total == 0:
        sys.exit("instr: no totals in callgrind's dump")
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("binaries", nargs="+")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--mockllm", default=os.path.join(ROOT, "build", "mockllm"))
    ap.add_argument("--config-extra", default="")
    a = ap.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("instr: valgrind is not installed (tools/deps.sh bench)")
    body = STREAM_BODY if a.stream else BODY
    tmp = tempfile.mkdtemp(prefix="sluice-instr-")
    mock_port = free_port()
    mock = subprocess.Popen([a.mockllm, "--listen", "127.0.0.1:%d" % mock_port],
                            stderr=open(os.path.join(tmp, "mock.err"), "w"))
    try:
        wait_port(mock_port, mock, "mockllm")
        ref = None
        for b in a.binaries:
            per = instructions(tmp, b, mock_port, a.requests, body, a.config_extra) / a.requests
            rel = "" if ref is None else "  (%+.0f, %+.1f %%)" % (per - ref, 100.0 * (per - ref) / ref)
            print("%s %s: %.0f instructions/request%s" % (b, "stream" if a.stream else "non-stream",
                                                        per, rel))
            if ref is None:
                ref = per
    finally:
        mock.kill()
        mock.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
