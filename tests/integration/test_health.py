# SPDX-License-Identifier: Apache-2.0
"""Backend health: active checks (backends[].health_check) marking targets
down and up, /readyz answering 503 while a route has no healthy target,
per-backend breakers (passive outlier detection), and the metrics."""
import json

from run import chat_body, check, eq, http_request, post, wait_until

CHAT = "/v1/chat/completions"
FAST = {"path": "/healthz", "interval": "30ms", "timeout": "500ms",
        "unhealthy_after": 2, "healthy_after": 2}


def _behave(mock, **kw):
    st, _, body = http_request(mock.port, "POST", "/mock/behave", json.dumps(kw).encode(),
                               {"Content-Type": "application/json"})
    eq(st, 200, "mockllm /mock/behave: %s" % body[:200])


def _routes(gw):
    st, _, body = gw.admin_request("GET", "/admin/routes")
    eq(st, 200, "/admin/routes")
    return json.loads(body)["routes"]


def _health(gw, backend):
    for r in _routes(gw):
        for a in r["arms"] + r["fallback"]:
            if a["backend"] == backend:
                return a["health"]
    return None


def _metric(text, line_prefix):
    for line in text.splitlines():
        if line.startswith(line_prefix):
            return float(line.rsplit(" ", 1)[1])
    return None


def _gw(t, a_extra=None, b_extra=None, route=True, breaker_yaml=""):
    a, b = t.mock(), t.mock()
    backends = [dict({"name": "a", "url": a.url, "models": ["mock-small"]}, **(a_extra or {})),
                dict({"name": "b", "url": b.url, "models": ["mock-large"]}, **(b_extra or {}))]
    extra = ""
    if route:
        extra = ("routes:\n  - model: chat-default\n    targets:\n"
                 "      - {backend: a, model: mock-small, weight: 1}\n"
                 "      - {backend: b, model: mock-large, weight: 1}\n" + breaker_yaml)
    gw = t.gateway(backends=backends, mock=a, workers=1, extra_yaml=extra)
    return a, b, gw


def test_active_checks_mark_down_and_up(t):
    a, b, gw = _gw(t, {"health_check": FAST}, {"health_check": FAST})
    wait_until(lambda: _health(gw, "a") == "up", 10, "a checked and up")
    _behave(a, healthz=503)
    wait_until(lambda: _health(gw, "a") == "down", 10, "a marked down by its checks")
    before = a.stats()["requests"]
    for i in range(20):
        st, _, body = post(gw.port, CHAT, chat_body("h %d" % i, model="chat-default"))
        eq(st, 200, "request %d" % i)
        eq(json.loads(body)["model"], "mock-large", "a down: every request on b")
    eq(a.stats()["requests"], before, "no request to the down backend")
    # The implicit route of a's own model has no healthy target: not ready.
    st, _, body = http_request(gw.port, "GET", "/readyz")
    eq(st, 503, "/readyz with a route whose only backend is down")
    eq(json.loads(body)["route"], "mock-small", "names the route: %r" % body)
    text = gw.metrics()
    eq(_metric(text, 'sluice_backend_up{backend="a"}'), 0, "a down in /metrics")
    eq(_metric(text, 'sluice_backend_up{backend="b"}'), 1, "b up in /metrics")
    check(_metric(text, 'sluice_backend_health_checks_total{backend="a",result="failed"}') >= 2,
          "failed checks counted")
    _behave(a, healthz=200)
    wait_until(lambda: _health(gw, "a") == "up", 10, "a healthy again")
    st, _, _ = http_request(gw.port, "GET", "/readyz")
    eq(st, 200, "/readyz again once a passes")
    models = set()
    for i in range(10):
        st, _, body = post(gw.port, CHAT, chat_body("u %d" % i, model="chat-default"))
        models.add(json.loads(body)["model"])
    eq(models, {"mock-small", "mock-large"}, "both arms serve again")
    gw.assert_alive()


def test_readyz_without_checks_and_unreachable_check(t):
    """A backend without checks is up; one whose health endpoint does not
    answer (a path it 404s) is down from the start, and /readyz says so."""
    a, b, gw = _gw(t, {"health_check": dict(FAST, path="/no-such-health")}, None, route=False)
    st, _, _ = http_request(gw.port, "GET", "/readyz")
    wait_until(lambda: http_request(gw.port, "GET", "/readyz")[0] == 503, 10,
               "/readyz 503 once a fails its checks")
    st, _, body = http_request(gw.port, "GET", "/readyz")
    eq(json.loads(body)["route"], "mock-small", "the unready route")
    # Requests for a down-only route are still tried (a route never
    # answers "no target" while its backend may have recovered).
    st, _, _ = post(gw.port, CHAT, chat_body("x", model="mock-small"))
    eq(st, 200, "the only backend is still tried")
    st, _, _ = http_request(gw.admin_port, "GET", "/readyz")
    eq(st, 503, "the admin listener's /readyz agrees")
    gw.assert_alive()


def test_backend_breaker_opens_half_opens_closes(t):
    """Passive outlier detection per backend, for implicit routes too:
    failures in a row open it, the open time ends in one probe, a good
    probe closes it."""
    a, b, gw = _gw(t, {"breaker": {"failures": 3, "open": "300ms"}}, None, route=False)
    _behave(a, count=3, status=503)
    for i in range(3):
        st, _, _ = post(gw.port, CHAT, chat_body("f", model="mock-small"))
        eq(st, 503, "failure %d relayed" % i)
    text = gw.metrics()
    eq(_metric(text, 'sluice_backend_breaker_open{backend="a"}'), 1, "open on the worker")
    eq(_metric(text, 'sluice_backend_breaker_opens_total{backend="a"}'), 1, "opened once")
    st, _, body = http_request(gw.port, "GET", "/readyz")
    eq(st, 503, "its only route is not ready while the breaker is open: %r" % body)
    # Half-open after the open time: the one probe succeeds and closes it.
    wait_until(lambda: _metric(gw.metrics(), 'sluice_backend_breaker_open{backend="a"}') == 0,
               10, "open time over")
    st, _, _ = post(gw.port, CHAT, chat_body("probe", model="mock-small"))
    eq(st, 200, "the probe")
    st, _, _ = http_request(gw.port, "GET", "/readyz")
    eq(st, 200, "ready again")
    eq(_metric(gw.metrics(), 'sluice_backend_breaker_opens_total{backend="a"}'), 1,
       "a good probe closes it")
    gw.assert_alive()


def test_backend_breaker_error_rate_moves_traffic(t):
    """The error-rate trigger: half the attempts of the window failing opens
    the backend's breaker even without failures in a row, and the route's
    traffic moves to the other arm."""
    a, b, gw = _gw(t, {"breaker": {"failures": 0, "error_percent": 50, "min_requests": 4,
                                   "window": "10s", "open": "10s"}})
    # a alternates: ok, 503, ok, 503 (x-mock headers go to every backend,
    # so drive a alone through its own model).
    for i in range(4):
        if i % 2:
            _behave(a, count=1, status=503)
        post(gw.port, CHAT, chat_body("r", model="mock-small"))
    text = gw.metrics()
    eq(_metric(text, 'sluice_backend_breaker_open{backend="a"}'), 1, "2 of 4 failed: open")
    for i in range(10):
        st, _, body = post(gw.port, CHAT, chat_body("m", model="chat-default"))
        eq(json.loads(body)["model"], "mock-large", "the route avoids a")
    gw.assert_alive()


def test_health_check_config_errors(t):
    import os
    import subprocess
    from run import BUILD
    for hc, why in (("{path: nope}", "path"), ("{interval: 1ms}", "interval"),
                    ("{unhealthy_after: 0}", "unhealthy_after"), ("{bogus: 1}", "bogus")):
        path = os.path.join(t.dir, "bad.yaml")
        with open(path, "w") as f:
            f.write("listen: 127.0.0.1:1\nbackends:\n  - name: a\n    url: http://127.0.0.1:9/v1\n"
                    "    models: [m]\n    health_check: %s\n" % hc)
        p = subprocess.run([os.path.join(BUILD, "sluiced"), "-c", path, "--check"],
                           capture_output=True, text=True, timeout=10)
        check(p.returncode != 0, "%s refused" % hc)
        check("bad.yaml:6" in p.stderr and why in p.stderr, "file:line: key for %s: %r"
              % (hc, p.stderr))


def test_reload_checks_the_new_backends(t):
    """The checker follows the snapshot: a reload that adds a health check
    (here, to a path that fails) starts checking at once, and the old
    snapshot's checker does not linger on backend indices that moved."""
    a, b, gw = _gw(t, {"health_check": FAST})
    wait_until(lambda: _health(gw, "a") == "up", 10, "a checked and up")
    eq(_health(gw, "b"), "unchecked", "b has no check before the reload")
    bad = dict(FAST, path="/no-such-health-path")
    text = gw.config_text.replace("  - name: b\n", "  - name: b\n    health_check: %s\n"
                                  % json.dumps(bad), 1)
    check(text != gw.config_text, "config edited")
    with open(gw.config_path, "w") as f:
        f.write(text)
    st, _, body = gw.admin_request("POST", "/admin/reload?wait=1", body=b"", timeout=15)
    eq(st, 200, "reload: %r" % body)
    wait_until(lambda: _health(gw, "b") == "down", 10, "b checked by the new snapshot: down")
    eq(_health(gw, "a"), "up", "a still up under the new checker")
    for i in range(6):
        st, _, body = post(gw.port, CHAT, chat_body("r %d" % i, model="chat-default"))
        eq(st, 200, "request %d" % i)
        eq(json.loads(body)["model"], "mock-small", "b down: every request on a")
    gw.assert_alive()
