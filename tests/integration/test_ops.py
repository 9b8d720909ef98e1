# SPDX-License-Identifier: Apache-2.0
"""Operations: graceful drain on SIGTERM, --check/--version/--help, health and metrics."""
import json
import os
import re
import signal
import socket
import subprocess
import time

import run
from run import (RawConn, build_request, chat_body, check, eq, fail, http_request, post,
                 sse_data, sse_events, wait_until)

CHAT = "/v1/chat/completions"


def _sluiced(*args, env=None, timeout=10):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([os.path.join(run.BUILD, "sluiced")] + list(args), cwd=run.ROOT,
                          capture_output=True, text=True, timeout=timeout, env=e)


def test_sigterm_drains_in_flight_stream(t):
    mock = t.mock()
    gw = t.gateway(mock=mock, drain="5s")
    c = RawConn(gw.port)
    c.send(build_request("POST", CHAT, chat_body("drain me", stream=True),
                         {"x-mock-tps": "10", "x-mock-tokens": "15"}))
    first = []
    r = c.read_response(timeout=5, on_chunk=lambda r, d: (first.append(d), False)[1])
    eq(r.status, 200, "stream status")
    check(first, "no first event")
    t_sig = time.monotonic()
    gw.signal(signal.SIGTERM)

    # new connections are refused (or closed without an answer) while draining
    def refused():
        try:
            s = socket.create_connection(("127.0.0.1", gw.port), timeout=1)
        except (ConnectionRefusedError, socket.timeout, OSError):
            return True
        try:
            s.settimeout(1)
            s.sendall(build_request("GET", "/healthz"))
            d = s.recv(100)
            return d == b""
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        finally:
            s.close()
    wait_until(refused, 1, "new connections to be refused after SIGTERM")

    # the stream in flight completes
    rest = c   # continue the chunked body on the same connection
    body = b"".join(first)
    deadline = time.monotonic() + 5
    while True:
        line, _ = rest._read_until(b"\r\n", deadline)
        size = int(line.split(b";")[0], 16)
        if size == 0:
            rest._read_until(b"\r\n", deadline)
            break
        data, _ = rest._read_exact(size + 2, deadline)
        body += data[:-2]
    ev = sse_events(body)
    eq(sse_data(ev[-1]), "[DONE]", "the drained stream's last event")
    contents = [json.loads(sse_data(e))["choices"][0]["delta"].get("content")
                for e in ev[:-1] if json.loads(sse_data(e)).get("choices")]
    eq(len([x for x in contents if x]), 15, "content events of the drained stream")
    check(time.monotonic() - t_sig >= 0.8, "the stream ended too early for a 1.5 s stream")
    check(c.wait_closed(3), "connection not closed after the drained response")
    c.close()
    rc = gw.wait(gw.drain_s + 1)
    check(rc is not None, "sluiced still running %.1fs after SIGTERM" % (time.monotonic() - t_sig))
    eq(rc, 0, "sluiced exit status after the drain")
    check(time.monotonic() - t_sig <= gw.drain_s + 1, "drain took too long")
    eq(mock.stats()["streams_completed"], 1, "streams completed at the backend")


def test_sigterm_idle_exits_fast_and_drain_deadline_cuts(t):
    mock = t.mock()
    gw = t.gateway(mock=mock, drain="1s")
    idle = RawConn(gw.port)
    idle.send(build_request("GET", "/healthz"))
    eq(idle.read_response().status, 200, "healthz")
    # a stream much longer than the drain time
    c = RawConn(gw.port)
    c.send(build_request("POST", CHAT, chat_body("too long", stream=True),
                         {"x-mock-tps": "5", "x-mock-tokens": "100"}))
    c.read_response(timeout=5, on_chunk=lambda r, d: False)
    t0 = time.monotonic()
    gw.signal(signal.SIGTERM)
    check(idle.wait_closed(2), "idle keep-alive connection not closed on SIGTERM")
    rc = gw.wait(5)
    dt = time.monotonic() - t0
    check(rc is not None, "sluiced did not exit within 5s (drain is 1s)")
    eq(rc, 0, "exit status")
    check(0.8 <= dt <= 3, "exit %.2fs after SIGTERM with a 1s drain" % dt)
    check(c.wait_closed(2), "cut stream connection not closed")
    idle.close()
    c.close()
    wait_until(lambda: mock.stats()["active"] == 0, 2, "mockllm active back to 0")


def test_check_example_config(t):
    p = _sluiced("--check", "-c", "config/sluice.example.yaml")
    eq(p.returncode, 0, "--check on the example config (stderr %r)" % p.stderr)


def test_check_unknown_key(t):
    path = os.path.join(t.dir, "bad.yaml")
    with open(path, "w") as f:
        f.write('listen: "127.0.0.1:8080"\nworkers: 1\nlimits:\n  max_body_bytes: 1MiB\n'
                '  max_bodee: 3\nbackends:\n  - name: a\n    url: "http://127.0.0.1:1/v1"\n'
                '    models: ["m"]\n')
    p = _sluiced("--check", "-c", path)
    eq(p.returncode, 1, "--check on a config with an unknown key")
    out = p.stderr + p.stdout
    m = re.search(r"^%s:(\d+): ([^:]+): unknown key" % re.escape(path), out, re.M)
    check(m, "no 'FILE:LINE: key: unknown key' line in %r" % out)
    eq(m.group(1), "5", "line of the unknown key")
    check("max_bodee" in m.group(2), "key named in %r" % m.group(0))
    # a top-level unknown key, and the daemon itself refuses to start too
    with open(path, "w") as f:
        f.write('listen: "127.0.0.1:8080"\nworkerz: 1\nbackends:\n  - name: a\n'
                '    url: "http://127.0.0.1:1/v1"\n    models: ["m"]\n')
    p = _sluiced("--check", "-c", path)
    eq(p.returncode, 1, "--check, top-level unknown key")
    check(re.search(r"^%s:2: workerz: unknown key" % re.escape(path), p.stderr, re.M),
          "stderr %r" % p.stderr)
    p = _sluiced("-c", path)
    eq(p.returncode, 1, "starting with a bad config")
    # a missing file
    p = _sluiced("--check", "-c", os.path.join(t.dir, "nope.yaml"))
    eq(p.returncode, 1, "--check on a missing file")


def test_version_and_help(t):
    with open(os.path.join(run.ROOT, "VERSION")) as f:
        version = f.read().strip()
    p = _sluiced("--version")
    eq(p.returncode, 0, "--version exit status")
    check(re.fullmatch(r"sluiced %s\n" % re.escape(version), p.stdout),
          "--version printed %r, want 'sluiced %s'" % (p.stdout, version))
    p = _sluiced("-V")
    eq(p.stdout.strip(), "sluiced " + version, "-V")
    p = _sluiced("--help")
    eq(p.returncode, 0, "--help exit status")
    check("--check" in p.stdout and "-c" in p.stdout, "--help text %r" % p.stdout)
    p = _sluiced()
    eq(p.returncode, 2, "no arguments exit status")
    p = _sluiced("--bogus")
    eq(p.returncode, 2, "unknown option exit status")


def test_health_ready_metrics(t):
    mock = t.mock()
    gw = t.gateway(mock=mock)
    st, h, body = http_request(gw.port, "GET", "/healthz")
    eq((st, json.loads(body)), (200, {"status": "ok"}), "/healthz")
    st, h, body = http_request(gw.port, "GET", "/readyz")
    eq((st, json.loads(body)), (200, {"status": "ready"}), "/readyz")
    st, h, body = http_request(gw.port, "HEAD", "/healthz")
    eq((st, body), (200, b""), "HEAD /healthz")
    post(gw.port, CHAT, chat_body("metric me"))
    post(gw.port, CHAT, chat_body("x", model="not-served"))
    text = wait_until(lambda: (lambda m: m if 'status="404"' in m else None)(gw.metrics()), 3,
                      "the 404 to show in metrics")
    st, h, _ = gw.admin_request("GET", "/metrics")
    check(h.get("content-type", "").startswith("text/plain"), "metrics content-type %r"
          % h.get("content-type"))
    check(re.search(r'^sluice_requests_total\{model="mock-small",backend="mock",status="200"\} 1$',
                    text, re.M), "no 200 request counted:\n%s" % text[:2000])
    check(re.search(r'^sluice_build_info\{version="[^"]+"\} 1$', text, re.M), "no build info")
    check(re.search(r'^sluice_request_duration_seconds_count\{model="mock-small"\} 1$', text, re.M),
          "no duration histogram count for mock-small")
    for line in text.splitlines():
        if line and not line.startswith("#"):
            check(re.fullmatch(r'[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [0-9.eE+-]+|'
                               r'[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? \+Inf', line),
                  "not a Prometheus sample line: %r" % line)
