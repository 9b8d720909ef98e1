#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""What a fallback adds to a request's latency.

    tools/bench/failover.py [--requests N] [--rounds R]

One sluiced (one worker, no access log) with three routes to one mockllm:
`direct` (the fallback target alone), `refused` (first target a port
nobody listens on, then the fallback) and `503` (first target a mockllm
told by POST /mock/behave to answer 503, then the fallback).  Requests
interleave the three in rounds; prints the p50 and p90 of each and the
p50 added over `direct`, in milliseconds.
"""
import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import free_port, wait_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def request(conn, model):
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}],
                       "max_tokens": 16})
    t0 = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    dt = time.perf_counter() - t0
    if resp.status != 200:
        sys.exit("failover: %s answered %d" % (model, resp.status))
    return dt * 1000.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--sluiced", default=os.path.join(ROOT, "build", "sluiced"))
    ap.add_argument("--mockllm", default=os.path.join(ROOT, "build", "mockllm"))
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="sluice-failover-")
    procs = []
    try:
        ports = [free_port(), free_port()]
        for p in ports:
            m = subprocess.Popen([a.mockllm, "--listen", "127.0.0.1:%d" % p, "--threads", "1"],
                                 stderr=subprocess.DEVNULL)
            procs.append(m)
            wait_port(p, m, "mockllm")
        good, bad = ports
        dead = free_port()
        gw_port = free_port()
        cfg = os.path.join(tmp, "sluice.yaml")
        with open(cfg, "w") as f:
            f.write('listen: "127.0.0.1:%d"\nworkers: 1\naccess_log: "off"\nlog_level: warn\n'
                    "kernel: {enabled: false}\nbackends:\n"
                    '  - {name: good, url: "http://127.0.0.1:%d/v1", models: [mock-small]}\n'
                    '  - {name: bad, url: "http://127.0.0.1:%d/v1", models: [x-bad]}\n'
                    '  - {name: dead, url: "http://127.0.0.1:%d/v1", models: [x-dead]}\n'
                    "routes:\n"
                    "  - {model: direct, targets: [{backend: good, model: mock-small}]}\n"
                    "  - {model: refused, targets: [{backend: dead}], fallback: [{backend: good, model: mock-small}],\n"
                    "     breaker: {failures: 0}, retry_budget: {percent: 100, min_retries: 1000}}\n"
                    "  - {model: s503, targets: [{backend: bad}], fallback: [{backend: good, model: mock-small}],\n"
                    "     breaker: {failures: 0}, retry_budget: {percent: 100, min_retries: 1000}}\n"
                    % (gw_port, good, bad, dead))
        gw = subprocess.Popen([a.sluiced, "-c", cfg], stderr=subprocess.DEVNULL)
        procs.append(gw)
        wait_port(gw_port, gw, "sluiced")
        c = http.client.HTTPConnection("127.0.0.1", bad, timeout=10)
        c.request("POST", "/mock/behave", json.dumps({"status": 503, "count": 1000000000}))
        c.getresponse().read()
        conn = http.client.HTTPConnection("127.0.0.1", gw_port, timeout=30)
        samples = {"direct": [], "refused": [], "s503": []}
        for _ in range(20):
            for m in samples:
                request(conn, m)
        for _ in range(a.requests):
            for m in samples:
                samples[m].append(request(conn, m))
        base = statistics.median(samples["direct"])
        for m, s in samples.items():
            s.sort()
            p50, p90 = statistics.median(s), s[int(len(s) * 0.9)]
            print("%-8s p50 %.3f ms  p90 %.3f ms  p50 added %+.3f ms" % (m, p50, p90, p50 - base))
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
