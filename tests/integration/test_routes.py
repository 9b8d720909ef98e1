# SPDX-License-Identifier: Apache-2.0
"""Routes: weighted canary arms, sticky cohorts, fallback until the first
content byte, breakers, the retry budget, and the admin view and control."""
import json
import os
import subprocess
import time

from run import (BUILD, RawConn, assert_openai_error, build_request, chat_body, check, eq,
                 free_port, http_request, wait_until,
                 post, sse_data, sse_events, stream_direct)

CHAT = "/v1/chat/completions"


def _behave(mock, **kw):
    st, _, body = http_request(mock.port, "POST", "/mock/behave", json.dumps(kw).encode(),
                               {"Content-Type": "application/json"})
    eq(st, 200, "mockllm /mock/behave: %s" % body[:200])


def _route_yaml(targets, fallback=(), extra=""):
    lines = ["routes:", "  - model: chat-default"]
    lines.append("    targets:")
    for t in targets:
        lines.append("      - {%s}" % ", ".join("%s: %s" % (k, json.dumps(v)) for k, v in t.items()))
    if fallback:
        lines.append("    fallback:")
        for t in fallback:
            lines.append("      - {%s}" % ", ".join("%s: %s" % (k, json.dumps(v))
                                                   for k, v in t.items()))
    for l in extra.strip("\n").splitlines():
        lines.append("    " + l)
    return "\n".join(lines) + "\n"


def _two_mocks(t):
    a, b = t.mock(), t.mock()
    backends = [{"name": "a", "url": a.url, "models": ["mock-small"]},
                {"name": "b", "url": b.url, "models": ["mock-large"]}]
    return a, b, backends


def _content(events):
    """The text a stream carried, and whether any event was an error."""
    text, error = "", False
    for ev in events:
        d = sse_data(ev)
        if not d or d == "[DONE]":
            continue
        obj = json.loads(d)
        error |= "error" in obj
        for ch in obj.get("choices", []):
            text += (ch.get("delta") or {}).get("content") or ""
    return text, error


def test_weights_split_within_tolerance(t):
    a, b, backends = _two_mocks(t)
    gw = t.gateway(backends=backends, mock=a, extra_yaml=_route_yaml(
        [{"backend": "a", "model": "mock-small", "weight": 3},
         {"backend": "b", "model": "mock-large", "weight": 1}]))
    n = 400
    models = {}
    for i in range(n):
        st, _, body = post(gw.port, CHAT, chat_body("w %d" % i, model="chat-default"))
        eq(st, 200, "request %d" % i)
        m = json.loads(body)["model"]
        models[m] = models.get(m, 0) + 1
    # The arm's model replaces the client's: the backend answers with it.
    check(abs(models.get("mock-small", 0) - 300) <= 8 and abs(models.get("mock-large", 0) - 100) <= 8,
          "3:1 split over %d requests within 2%%, got %r" % (n, models))
    eq(a.stats()["requests"] + b.stats()["requests"], n, "attempts (no retries)")
    log = gw.wait_access_log(n, path=CHAT)
    rec = [r for r in log if r.get("path") == CHAT][0]
    eq(rec.get("route"), "chat-default", "access log names the route")
    check(rec.get("upstream_model") in ("mock-small", "mock-large"), "access log names the arm model")
    eq(rec.get("model"), "chat-default", "access log keeps the client's model")


def test_sticky_caller_never_changes_arm(t):
    a, b, backends = _two_mocks(t)
    gw = t.gateway(backends=backends, mock=a, extra_yaml=_route_yaml(
        [{"backend": "a", "model": "mock-small", "weight": 1},
         {"backend": "b", "model": "mock-large", "weight": 1}],
        extra='sticky: {header: "x-user-id"}'))
    arms = {}
    for rnd in range(4):
        for u in range(30):
            st, _, body = post(gw.port, CHAT, chat_body("s", model="chat-default"),
                               {"x-user-id": "user-%d" % u})
            eq(st, 200, "sticky request")
            m = json.loads(body)["model"]
            check(arms.setdefault(u, m) == m, "user-%d moved from %s to %s" % (u, arms[u], m))
    check(len(set(arms.values())) == 2, "30 users spread over both arms: %r" % set(arms.values()))


def _fallback_gw(t, fault=None, status=None, **opts):
    a, b, backends = _two_mocks(t)
    gw = t.gateway(backends=backends, mock=a, extra_yaml=_route_yaml(
        [{"backend": "a", "model": "mock-small"}],
        fallback=[{"backend": "b", "model": "mock-large"}]), **opts)
    return a, b, gw


FAULTS = [
    ("503", {"status": 503}),
    ("429", {"status": 429}),
    ("reset", {"fault": "reset"}),
    ("close", {"fault": "close"}),
    ("error-event", {"fault": "error-event"}),
]


def test_fallback_hides_failures_before_content(t):
    for name, behave in FAULTS:
        for stream in (False, True):
            a, b, gw = _fallback_gw(t)
            _behave(a, count=1, **behave)
            # What the fallback target alone answers, for comparison.
            if stream:
                r = stream_direct(gw.port, chat_body("fb", model="chat-default", stream=True))
                text, error = _content(sse_events(r.body))
                check(not error, "%s stream: no error event reached the client" % name)
                check(text, "%s stream: content from the fallback" % name)
                head = dict(r.headers) if hasattr(r, "headers") else {}
                del head
            else:
                st, _, body = post(gw.port, CHAT, chat_body("fb", model="chat-default"))
                eq(st, 200, "%s: the client sees the fallback's answer" % name)
                eq(json.loads(body)["model"], "mock-large", "%s: answered by the fallback" % name)
            eq(b.stats()["requests"], 1, "%s (stream=%s): one request to the fallback" % (name, stream))
            gw.assert_alive()


def test_fallback_on_refused_and_timeout(t):
    b = t.mock()
    dead = "http://127.0.0.1:%d/v1" % free_port()
    backends = [{"name": "a", "url": dead, "models": ["mock-small"]},
                {"name": "b", "url": b.url, "models": ["mock-large"]}]
    gw = t.gateway(backends=backends, mock=b, extra_yaml=_route_yaml(
        [{"backend": "a", "model": "mock-small"}], fallback=[{"backend": "b", "model": "mock-large"}]))
    for stream in (False, True):
        if stream:
            r = stream_direct(gw.port, chat_body("r", model="chat-default", stream=True))
            check(_content(sse_events(r.body))[0], "refused: streamed content from the fallback")
        else:
            st, _, body = post(gw.port, CHAT, chat_body("r", model="chat-default"))
            eq(st, 200, "refused primary falls back")
    # A stall past the first-byte timeout.
    a2, b2 = t.mock(), t.mock()
    backends = [{"name": "a", "url": a2.url, "models": ["mock-small"]},
                {"name": "b", "url": b2.url, "models": ["mock-large"]}]
    gw2 = t.gateway(backends=backends, mock=a2, upstream_first_byte="400ms", extra_yaml=_route_yaml(
        [{"backend": "a", "model": "mock-small"}], fallback=[{"backend": "b", "model": "mock-large"}]))
    _behave(a2, fault="stall", count=1)
    st, _, body = post(gw2.port, CHAT, chat_body("stall", model="chat-default"))
    eq(st, 200, "a stalled primary falls back after the first-byte timeout")
    eq(json.loads(body)["model"], "mock-large", "answered by the fallback")


def test_no_fallback_after_content(t):
    a, b, gw = _fallback_gw(t)
    _behave(a, fault="reset-mid-stream", count=1)
    from run import RawConn, build_request
    c = RawConn(gw.port)
    try:
        c.send(build_request("POST", CHAT, chat_body("mid", model="chat-default", stream=True)))
        r = c.read_response()
    finally:
        c.close()
    eq(r.status, 200, "the stream had begun")
    text, error = _content(sse_events(r.body))
    check(text, "content from the primary reached the client")
    check(error, "the cut stream ends with an error event")
    eq(b.stats()["requests"], 0, "no second answer spliced in")


def test_breaker_opens_half_opens_closes(t):
    a, b, backends = _two_mocks(t)
    gw = t.gateway(backends=backends, mock=a, workers=1, extra_yaml=_route_yaml(
        [{"backend": "a", "model": "mock-small"}], fallback=[{"backend": "b", "model": "mock-large"}],
        extra="breaker: {failures: 3, open: 600ms}\nretry_budget: {percent: 100, min_retries: 100}"))
    _behave(a, status=503, count=1000)
    for i in range(10):
        st, _, _ = post(gw.port, CHAT, chat_body("b", model="chat-default"))
        eq(st, 200, "request %d answered by the fallback" % i)
    eq(a.stats()["requests"], 3, "after 3 failures the breaker keeps requests off the primary")
    st, _, body = gw.admin_request("GET", "/admin/routes")
    route = [r for r in json.loads(body)["routes"] if r["model"] == "chat-default"][0]
    eq(route["arms"][0]["breaker"], "open", "breaker state in /admin/routes")
    check('sluice_route_breaker_open{route="chat-default",backend="a",role="arm"} 1' in gw.metrics(),
          "breaker state in /metrics")
    time.sleep(0.7)
    st, _, _ = post(gw.port, CHAT, chat_body("probe", model="chat-default"))
    eq(a.stats()["requests"], 4, "half-open: one probe to the primary")
    _behave(a, count=0)
    time.sleep(0.7)
    st, _, body = post(gw.port, CHAT, chat_body("probe ok", model="chat-default"))
    eq(json.loads(body)["model"], "mock-small", "a good probe closes the breaker")
    for i in range(5):
        st, _, body = post(gw.port, CHAT, chat_body("closed", model="chat-default"))
        eq(json.loads(body)["model"], "mock-small", "closed: the primary serves again")


def test_retry_budget_caps_amplification(t):
    a, b, backends = _two_mocks(t)
    gw = t.gateway(backends=backends, mock=a, extra_yaml=_route_yaml(
        [{"backend": "a", "model": "mock-small"}], fallback=[{"backend": "b", "model": "mock-large"}],
        extra="breaker: {failures: 0}\nretry_budget: {percent: 20, min_retries: 0}"))
    _behave(a, status=503, count=100000)
    _behave(b, status=503, count=100000)
    n = 100
    for i in range(n):
        st, _, body = post(gw.port, CHAT, chat_body("outage", model="chat-default"))
        eq(st, 503, "total outage: the backend's 503")
    attempts = a.stats()["requests"] + b.stats()["requests"]
    check(attempts <= n * 1.2 + 2, "attempts during a total outage %d <= 120%% of %d" % (attempts, n))
    check(b.stats()["requests"] >= 10, "the budget still allowed some fallbacks: %d" % b.stats()["requests"])


def test_admin_weights_take_effect_and_hostile_input(t):
    a, b, backends = _two_mocks(t)
    gw = t.gateway(backends=backends, mock=a, extra_yaml=_route_yaml(
        [{"backend": "a", "model": "mock-small", "weight": 1},
         {"backend": "b", "model": "mock-large", "weight": 1}]))
    st, _, body = gw.admin_request("POST", "/admin/routes/chat-default",
                                   body=json.dumps({"weights": {"a": 0}}).encode())
    eq(st, 200, "set weights: %s" % body[:200])
    for i in range(20):
        st, _, body = post(gw.port, CHAT, chat_body("drained", model="chat-default"))
        eq(json.loads(body)["model"], "mock-large", "a drained arm gets nothing")
    check('sluice_route_weight{route="chat-default",backend="a",role="arm"} 0' in gw.metrics(),
          "live weight in /metrics")
    for path, payload, want in [
            ("/admin/routes/nope", {"weights": {"a": 1}}, 404),
            ("/admin/routes/chat-default", {"weights": {"zzz": 1}}, 400),
            ("/admin/routes/chat-default", {"weights": {"a": -1}}, 400),
            ("/admin/routes/chat-default", {"weights": {"a": 10 ** 30}}, 400),
            ("/admin/routes/chat-default", {"weights": [1]}, 400),
            ("/admin/routes/chat-default", "not json", 400)]:
        raw = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        st, _, body = gw.admin_request("POST", path, body=raw)
        eq(st, want, "%s %r" % (path, payload))
        check(b'"error"' in body, "an OpenAI-style error body")
    st, _, _ = http_request(gw.port, "GET", "/admin/routes")
    eq(st, 404, "/admin/routes is not served on the API listener")
    # All arms drained: 503, not a hang or a crash.
    gw.admin_request("POST", "/admin/routes/chat-default", body=b'{"weights":{"a":0,"b":0}}')
    st, _, body = post(gw.port, CHAT, chat_body("none", model="chat-default"))
    assert_openai_error(st, body, 503, "server_error", "no_healthy_target", "every arm drained")
    gw.assert_alive()


def test_bad_route_config_names_file_line_key(t):
    path = os.path.join(t.dir, "bad.yaml")
    cases = [
        ("    targets: [{backend: nope}]\n", "routes[0].targets[0].backend", "no backend named nope"),
        ("    targets: [{backend: a, weight: -1}]\n", "routes[0].targets[0].weight", "non-negative"),
        ("    targets: [{backend: a, weight: 0}]\n", "routes[0].targets", "weight above 0"),
        ("    targets: [{backend: a}]\n    sticky: {header: x, tenant: true}\n",
         "routes[0].sticky", "one of"),
        ("    targets: [{backend: a}]\n    balance: fastest\n", "routes[0].balance", "weighted"),
    ]
    for body, key, why in cases:
        with open(path, "w") as f:
            f.write("backends:\n  - {name: a, url: \"http://127.0.0.1:1/v1\", models: [m]}\n"
                    "routes:\n  - model: r\n" + body)
        p = subprocess.run([os.path.join(BUILD, "sluiced"), "--check", "-c", path],
                           capture_output=True, text=True, timeout=10)
        eq(p.returncode, 1, "--check of a bad route (%s)" % key)
        check(("bad.yaml:" in p.stderr) and (key + ":") in p.stderr and why in p.stderr,
              "error names file:line: key: reason: %r" % p.stderr)


def _sluicectl(gw, *args, env=None):
    e = dict(os.environ, **(env or {}))
    e.pop("SLUICE_CONFIG", None)
    return subprocess.run([os.path.join(BUILD, "sluicectl"), "-c", gw.config_path] + list(args),
                          capture_output=True, text=True, timeout=20, env=e)


def test_sluicectl_routes_and_route_set(t):
    """The operator's commands: sluicectl reads the admin listener and token
    from the config, shows every arm, and changes live weights."""
    a, b, backends = _two_mocks(t)
    gw = t.gateway(backends=backends, mock=a, admin_token="s3cret-admin-token-0123", extra_yaml=_route_yaml(
        [{"backend": "a", "model": "mock-small", "weight": 3},
         {"backend": "b", "model": "mock-large", "weight": 1}]))
    p = _sluicectl(gw, "routes")
    eq(p.returncode, 0, "sluicectl routes: %s" % p.stderr)
    rows = [l.split() for l in p.stdout.splitlines() if l.startswith("chat-default")]
    eq(sorted((r[2], r[4]) for r in rows), [("a", "3"), ("b", "1")], "arms and weights")
    p = _sluicectl(gw, "route", "set", "chat-default", "a=0", "b=5")
    eq(p.returncode, 0, "sluicectl route set: %s" % p.stderr)
    for i in range(10):
        st, _, body = post(gw.port, CHAT, chat_body("after set", model="chat-default"))
        eq(json.loads(body)["model"], "mock-large", "the drained arm gets nothing")
    p = _sluicectl(gw, "--json", "routes")
    eq(p.returncode, 0, "sluicectl --json routes")
    route = [r for r in json.loads(p.stdout)["routes"] if r["model"] == "chat-default"][0]
    eq({arm["backend"]: arm["weight"] for arm in route["arms"]}, {"a": 0, "b": 5}, "live weights")
    # Errors: the daemon's reason reaches the operator, with a failing exit.
    p = _sluicectl(gw, "route", "set", "chat-default", "zzz=1")
    eq(p.returncode, 1, "an unknown arm fails")
    check("400" in p.stderr and "arm" in p.stderr, "the daemon's reason: %r" % p.stderr)
    p = _sluicectl(gw, "route", "set", "chat-default", "a=-1")
    eq(p.returncode, 2, "a negative weight is a usage error")
    p = _sluicectl(gw, "routes", env={"SLUICE_ADMIN_TOKEN": "wrong"})
    eq(p.returncode, 4, "a wrong token is refused: %r" % p.stderr)
    check("401" in p.stderr, "says 401: %r" % p.stderr)
    p = subprocess.run([os.path.join(BUILD, "sluicectl"), "--admin", "127.0.0.1:%d" % free_port(),
                        "routes"], capture_output=True, text=True, timeout=20,
                       env={k: v for k, v in os.environ.items() if k != "SLUICE_CONFIG"})
    eq(p.returncode, 1, "nothing listening: fails")
    gw.assert_alive()


def _arm(gw, backend, route="chat-default"):
    st, _, body = gw.admin_request("GET", "/admin/routes")
    eq(st, 200, "/admin/routes")
    r = [r for r in json.loads(body)["routes"] if r["model"] == route][0]
    return [a for a in r["arms"] + r["fallback"] if a["backend"] == backend][0]


def _metric(text, name, **labels):
    """The value of one series of a Prometheus exposition, or None."""
    for line in text.splitlines():
        if line.startswith(name + "{") and all('%s="%s"' % kv in line for kv in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_per_arm_latency_ttft_tokens_errors(t):
    """A canary is compared with its baseline: each arm's responses,
    errors, latency and first-token histograms and tokens, in /metrics, in
    /admin/routes and in sluicectl routes."""
    a, b, backends = _two_mocks(t)
    gw = t.gateway(backends=backends, mock=a, extra_yaml=_route_yaml(
        [{"backend": "a", "model": "mock-small", "weight": 1},
         {"backend": "b", "model": "mock-large", "weight": 1}]))
    # The canary b is slow to its first token.
    _behave(b, count=1000, ttft_ms=300)
    n = 16
    for i in range(n):
        if i % 2:
            r = stream_direct(gw.port, chat_body("arm %d" % i, model="chat-default", stream=True))
            check(sse_events(r.body), "stream %d answered" % i)
        else:
            st, _, _ = post(gw.port, CHAT, chat_body("arm %d" % i, model="chat-default"))
            eq(st, 200, "request %d" % i)
    _behave(b, count=0)
    # A stream's client has its last byte just before the exchange ends
    # (its end hooks run once the send completes): wait for the last one.
    wait_until(lambda: _arm(gw, "a")["responses"] + _arm(gw, "b")["responses"] == n, 5,
               "every request ended on an arm")
    arm_a, arm_b = _arm(gw, "a"), _arm(gw, "b")
    eq(arm_a["responses"] + arm_b["responses"], n, "every request ended on an arm")
    eq((arm_a["errors"], arm_b["errors"]), (0, 0), "no errors yet")
    for arm in (arm_a, arm_b):
        check(arm["input_tokens"] > 0 and arm["output_tokens"] > 0, "tokens per arm: %r" % arm)
        check(arm["latency_p50_ms"] >= 0 and arm["ttft_p50_ms"] >= 0, "latency per arm: %r" % arm)
    check(arm_b["ttft_p50_ms"] >= 250 and arm_b["latency_avg_ms"] >= 250,
          "the slow canary shows: %r" % arm_b)
    check(arm_a["ttft_p50_ms"] < arm_b["ttft_p50_ms"], "baseline faster than canary")
    check(_metric(gw.metrics(), "sluice_route_time_to_first_token_seconds_bucket", le="0.25",
                  route="chat-default", backend="b", role="arm") == 0,
          "no canary first token under 250 ms")
    # Errors: a 503 on a route without a chain ends on the arm as an error.
    _behave(a, count=1, status=503)
    _behave(b, count=1, status=503)
    st, _, _ = post(gw.port, CHAT, chat_body("err", model="chat-default"))
    eq(st, 503, "the backend's 503 reaches the client")
    _behave(a, count=0)
    _behave(b, count=0)
    wait_until(lambda: _arm(gw, "a")["errors"] + _arm(gw, "b")["errors"] >= 1, 5,
               "the error counted")
    errs = _arm(gw, "a")["errors"] + _arm(gw, "b")["errors"]
    eq(errs, 1, "one error counted on its arm")
    text = gw.metrics()
    for be, arm in (("a", _arm(gw, "a")), ("b", _arm(gw, "b"))):
        lab = dict(route="chat-default", backend=be, role="arm")
        eq(_metric(text, "sluice_route_request_duration_seconds_count", **lab), arm["responses"],
           "latency histogram count of %s" % be)
        eq(_metric(text, "sluice_route_request_duration_seconds_bucket", le="+Inf", **lab),
           arm["responses"], "+Inf bucket of %s" % be)
        check(_metric(text, "sluice_route_time_to_first_token_seconds_count", **lab) > 0,
              "ttft histogram of %s" % be)
        eq(_metric(text, "sluice_route_tokens_total", direction="output", **lab),
           arm["output_tokens"], "output tokens of %s" % be)
        eq(_metric(text, "sluice_route_errors_total", **lab), arm["errors"], "errors of %s" % be)
    p = _sluicectl(gw, "routes")
    eq(p.returncode, 0, "sluicectl routes: %s" % p.stderr)
    head = p.stdout.splitlines()[0].split()
    for col in ("ERRORS", "P50_MS", "TTFT_P50_MS", "TOKENS_IN", "TOKENS_OUT", "HEALTH"):
        check(col in head, "sluicectl routes shows %s: %r" % (col, head))
    row = [l.split() for l in p.stdout.splitlines() if l.startswith("chat-default")
           and l.split()[2] == "b"][0]
    check(float(row[head.index("TTFT_P50_MS")]) >= 250, "canary's TTFT in the table: %r" % row)
    gw.assert_alive()


def test_context_window_fallback(t):
    """A 400 context_length_exceeded before any content retries on the next
    fallback marked context_fallback (skipping unmarked ones), counted as an
    attempt and paid by the retry budget, sparing the arm's breaker; without
    such a target the client gets the 400 as it was."""
    a, b, backends = _two_mocks(t)
    c = t.mock()
    backends.append({"name": "c", "url": c.url, "models": ["mock-huge"]})
    gw = t.gateway(backends=backends, mock=a, extra_yaml=_route_yaml(
        [{"backend": "a", "model": "mock-small"}],
        fallback=[{"backend": "b", "model": "mock-large"},
                  {"backend": "c", "model": "mock-huge", "context_fallback": True}]))
    for stream in (False, True):
        _behave(a, count=1, fault="context-length")
        body = chat_body("a very long prompt", model="chat-default", stream=stream)
        if stream:
            r = stream_direct(gw.port, body)
            text, error = _content(sse_events(r.body))
            check(text and not error, "stream: answered by the larger window")
        else:
            st, _, resp = post(gw.port, CHAT, body)
            eq(st, 200, "the larger window answers")
            eq(json.loads(resp)["model"], "mock-huge", "answered by the context_fallback target")
    eq(b.stats()["requests"], 0, "the unmarked fallback is skipped")
    eq(c.stats()["requests"], 2, "the marked one takes both")
    arm = _arm(gw, "a")
    eq((arm["failures"], arm["fallbacks"], arm["breaker"]), (0, 2, "closed"),
       "a context overflow is not the arm's failure")
    log = [r for r in gw.wait_access_log(2, path=CHAT) if r.get("path") == CHAT]
    eq([r.get("attempts") for r in log], [2, 2], "counted as attempts")
    eq([r.get("backend") for r in log], ["c", "c"], "the log names the arm's backend")
    # An ordinary 503 still walks the whole chain (b first).
    _behave(a, count=1, status=503)
    st, _, resp = post(gw.port, CHAT, chat_body("x", model="chat-default"))
    eq((st, json.loads(resp)["model"]), (200, "mock-large"), "503: the next link, marked or not")
    # Another 400 is the client's: relayed, no retry.
    st, _, resp = post(gw.port, CHAT, chat_body("x", model="chat-default"), {"x-mock-status": "400"})
    eq(st, 400, "a plain 400 is relayed")
    eq(c.stats()["requests"], 2, "and not retried")
    gw.assert_alive()


def test_context_window_without_target_relays_400(t):
    a, b, gw = _fallback_gw(t)
    _behave(a, count=1, fault="context-length")
    st, _, resp = post(gw.port, CHAT, chat_body("long", model="chat-default"))
    eq(st, 400, "no context_fallback target: the 400 as it was")
    eq(json.loads(resp)["error"]["code"], "context_length_exceeded", "its code")
    eq(b.stats()["requests"], 0, "no retry on an unmarked target")
    gw.assert_alive()


def _same_backend_chain(t, backoff):
    a, b, backends = _two_mocks(t)
    gw = t.gateway(backends=backends, mock=a, workers=1, extra_yaml=_route_yaml(
        [{"backend": "a", "model": "mock-small"}],
        fallback=[{"backend": "a", "model": "mock-small"}, {"backend": "b", "model": "mock-large"}],
        extra="retry: %s\nretry_budget: {percent: 100, min_retries: 100}" % backoff))
    return a, b, gw


def test_backoff_before_revisiting_a_target(t):
    """A chain that comes back to a backend it already tried waits a
    jittered exponential backoff first (on the worker's timers: other
    requests go on meanwhile); a client that leaves during the wait gets
    no retry sent on its behalf."""
    a, b, gw = _same_backend_chain(t, "{backoff_base: 400ms, backoff_max: 400ms}")
    _behave(a, count=1, status=503)
    st, _, body = post(gw.port, CHAT, chat_body("again", model="chat-default"))
    eq(st, 200, "the second try of a answers")
    eq(json.loads(body)["model"], "mock-small", "answered by a, not the last link")
    rec = [r for r in gw.wait_access_log(1, path=CHAT) if r.get("path") == CHAT][-1]
    eq(rec.get("attempts"), 2, "two attempts")
    check(rec["latency_ms"] >= 200, "waited at least half the 400 ms backoff: %r" % rec)
    # The worker is not blocked while one exchange backs off: another
    # connection is served meanwhile.
    _behave(a, count=1, status=503)
    c = RawConn(gw.port, timeout=10)
    c.send(build_request("POST", CHAT, chat_body("slow", model="chat-default"),
                         {"Content-Type": "application/json"}))
    st, _, _ = http_request(gw.port, "GET", "/healthz")
    eq(st, 200, "another request is served during the backoff")
    r = c.read_response()
    eq(r.status, 200, "the backed-off request completes")
    c.close()
    # A client gone during the wait: the retry is not sent.
    _behave(a, count=1, status=503)
    before = a.stats()["requests"]
    c = RawConn(gw.port, timeout=10)
    c.send(build_request("POST", CHAT, chat_body("gone", model="chat-default"),
                         {"Content-Type": "application/json"}))
    wait_until(lambda: a.stats()["requests"] == before + 1, 10, "the first attempt")
    c.close()
    time.sleep(0.6)  # past the backoff: a retry would have gone out by now
    eq(a.stats()["requests"], before + 1, "no retry for a client that left")
    eq(b.stats()["requests"], 0, "nor a fallback")
    gw.assert_alive()


def test_backoff_off_and_bad_config(t):
    a, b, gw = _same_backend_chain(t, "{backoff_base: 0}")
    _behave(a, count=1, status=503)
    st, _, _ = post(gw.port, CHAT, chat_body("x", model="chat-default"))
    eq(st, 200, "retried at once")
    gw.assert_alive()
    path = os.path.join(t.dir, "bad.yaml")
    with open(path, "w") as f:
        f.write("listen: 127.0.0.1:1\nbackends:\n  - name: a\n    url: http://127.0.0.1:9/v1\n"
                "    models: [m]\nroutes:\n  - model: r\n    targets: [{backend: a}]\n"
                "    retry: {backoff_base: 2m}\n")
    p = subprocess.run([os.path.join(BUILD, "sluiced"), "-c", path, "--check"],
                       capture_output=True, text=True, timeout=10)
    check(p.returncode != 0 and "bad.yaml:9" in p.stderr and "backoff_base" in p.stderr,
          "file:line: key: %r" % p.stderr)
