#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Latency of requests that need no Redis while Redis is stalled.

    tools/bench/redis_stall.py BUILD_DIR [BUILD_DIR...] [--requests N]

For each build: one sluiced (one worker, global quotas on a real
redis-server, on_error: open, redis timeout 1s) and mockllm.  A warm API
key (its lease already holds units) sends N requests one after another
while, every 50 requests, a request with a fresh key (its scope has no
lease: it needs Redis) is sent on the side, with Redis stopped (SIGSTOP).
Prints the warm key's p50 / p99 / max in ms, with Redis running and with
it stalled.  Uses the integration harness (tests/integration/run.py) for
processes and cleanup.
"""
import argparse
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import run  # noqa: E402
from run import RawConn, build_request, chat_body, post  # noqa: E402
from test_auth import bearer, create_key  # noqa: E402
from test_quota import quota_gateway  # noqa: E402

CHAT = "/v1/chat/completions"


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


def warm_latencies(gw, key, n, side=None):
    out = []
    pending = []
    for i in range(n):
        if side and i % 50 == 0:
            pending.append(side())
        t0 = time.monotonic()
        st = post(gw.port, CHAT, chat_body(), bearer(key))[0]
        out.append((time.monotonic() - t0) * 1000)
        if st != 200:
            sys.exit("redis_stall: warm request status %d" % st)
    return out, pending


def one_build(build, n):
    run.BUILD = os.path.abspath(build)
    t = run.Ctx("redis_stall")
    try:
        redis = t.redis()
        extra = "\nquota:\n  redis: {url: \"%s\", on_error: open, timeout: 1s}\n" % redis.url
        gw = quota_gateway(t, t.mock(), {"requests_per_minute": 1000000},
                           key_limits={"requests_per_minute": 1000000}, extra=extra,
                           workers=1, access_log=False)
        warm = create_key(gw, "acme")
        run.wait_until(lambda: post(gw.port, CHAT, chat_body(), bearer(warm))[0] == 200, 5,
                       "the warm key")
        base, _ = warm_latencies(gw, warm, n)
        colds = [create_key(gw, "acme") for _ in range(n // 50 + 1)]
        time.sleep(1.5)   # the keys file is re-read about once a second

        def side():
            c = RawConn(gw.port, timeout=30)
            c.send(build_request("POST", CHAT, chat_body(), bearer(colds.pop())))
            return c

        redis.p.send_signal(signal.SIGSTOP)
        try:
            stalled, pending = warm_latencies(gw, warm, n, side)
        finally:
            redis.p.send_signal(signal.SIGCONT)
        for c in pending:
            c.close()
        return base, stalled
    finally:
        t.cleanup()
        t.run_cleanups()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("builds", nargs="+")
    ap.add_argument("--requests", type=int, default=500)
    a = ap.parse_args()
    for b in a.builds:
        base, stalled = one_build(b, a.requests)
        for what, xs in (("redis up", base), ("redis stalled", stalled)):
            print("%s %s: warm key p50 %.2f ms p99 %.2f ms max %.2f ms (%d requests)"
                  % (b, what, pct(xs, 50), pct(xs, 99), max(xs), len(xs)))


if __name__ == "__main__":
    main()
