# SPDX-License-Identifier: Apache-2.0
"""Relaying: byte-exact bodies, streaming, usage accounting, routing, credentials."""
import json
import re
import time

from run import (RawConn, build_request, chat_body, check, eq, fail, http_request, post,
                 assert_openai_error, sse_events, sse_data, stream_direct, wait_until)


def _same_response(gw, mock, path, body, headers=None, what=""):
    d_st, d_h, d_body = post(mock.port, path, body, headers)
    g_st, g_h, g_body = post(gw.port, path, body, headers)
    eq(g_st, d_st, "%s status" % what)
    eq(g_h.get("content-type"), d_h.get("content-type"), "%s content-type" % what)
    eq(g_body, d_body, "%s body" % what)
    return d_st, d_body


def test_nonstream_byte_exact(t):
    mock = t.mock()
    gw = t.gateway(mock=mock)
    st, body = _same_response(gw, mock, "/v1/chat/completions",
                              chat_body("the quick brown fox jumps"), what="chat")
    eq(st, 200, "chat status")
    check(json.loads(body)["choices"][0]["message"]["content"], "chat has content")
    _same_response(gw, mock, "/v1/chat/completions",
                   chat_body("two words", model="mock-large", max_tokens=7,
                             temperature=0.2), what="chat mock-large")
    st, _ = _same_response(gw, mock, "/v1/completions",
                           {"model": "mock-small", "prompt": "once upon a time"},
                           what="completions")
    eq(st, 200, "completions status")
    st, body = _same_response(gw, mock, "/v1/embeddings",
                              {"model": "mock-embed", "input": ["alpha beta", "gamma"]},
                              what="embeddings float")
    eq(st, 200, "embeddings status")
    eq(len(json.loads(body)["data"]), 2, "embeddings count")
    _same_response(gw, mock, "/v1/embeddings",
                   {"model": "mock-embed", "input": "alpha beta", "encoding_format": "base64",
                    "dimensions": 16}, what="embeddings base64")
    # a stream:false request with stream_options is not touched either
    _same_response(gw, mock, "/v1/chat/completions",
                   chat_body("hi", stream=False), what="chat stream:false")


def test_stream_with_client_include_usage_exact(t):
    mock = t.mock()
    gw = t.gateway(mock=mock)
    for body in (chat_body("stream me please", stream=True,
                           stream_options={"include_usage": True}),
                 {"model": "mock-small", "prompt": "text stream", "stream": True,
                  "stream_options": {"include_usage": True}}):
        h = {"x-mock-tokens": "6"}
        direct = stream_direct(mock.port, body, h)
        via = stream_direct(gw.port, body, h)
        eq(via.header("content-type"), direct.header("content-type"), "stream content-type")
        eq(via.body, direct.body, "stream body with include_usage")
        ev = sse_events(via.body)
        eq(sse_data(ev[-1]), "[DONE]", "last event")
        check(json.loads(sse_data(ev[-2])).get("usage"), "usage event present")


def _strip_usage_event(body):
    out = []
    for ev in sse_events(body):
        d = sse_data(ev)
        if d and d.startswith("{"):
            doc = json.loads(d)
            if doc.get("usage") and not doc.get("choices"):
                continue
        out.append(ev)
    return "".join(out).encode()


def test_stream_without_client_usage_strips_usage_event(t):
    mock = t.mock()
    gw = t.gateway(mock=mock)
    h = {"x-mock-tokens": "8"}
    cases = [
        chat_body("no usage wanted", stream=True),
        chat_body("null options", stream=True, stream_options=None),
        chat_body("false usage", stream=True, stream_options={"include_usage": False}),
        chat_body("empty options", stream=True, stream_options={}),
        {"model": "mock-small", "prompt": "text no usage", "stream": True},
    ]
    for body in cases:
        with_usage = dict(body)
        with_usage["stream_options"] = {"include_usage": True}
        direct = stream_direct(mock.port, with_usage, h)
        via = stream_direct(gw.port, body, h)
        want = _strip_usage_event(direct.body)
        check(want != direct.body, "direct stream has a usage event to strip")
        eq(via.body, want, "stream body for %s" % json.dumps(body)[:80])
        for ev in sse_events(via.body):
            d = sse_data(ev)
            if d != "[DONE]":
                check(json.loads(d).get("choices"), "client got a usage-only event: %s" % d)


def _timed_events(r):
    """[(arrival time, event)] from a chunked response's chunks."""
    out, pending = [], ""
    for tm, data in r.chunks:
        pending += data.decode()
        while "\n\n" in pending:
            ev, pending = pending.split("\n\n", 1)
            out.append((tm, ev + "\n\n"))
    return out


def test_stream_events_flushed_as_they_come(t):
    mock = t.mock()
    gw = t.gateway(mock=mock)
    c = RawConn(gw.port)
    t0 = time.monotonic()
    c.send(build_request("POST", "/v1/chat/completions",
                         chat_body("pace me", stream=True),
                         {"x-mock-tps": "20", "x-mock-tokens": "5", "x-mock-ttft-ms": "0"}))
    r = c.read_response(timeout=10)
    c.close()
    eq(r.status, 200, "status")
    ev = _timed_events(r)
    check(len(ev) >= 7, "want >= 7 events, got %d" % len(ev))
    eq(sse_data(ev[-1][1]), "[DONE]", "last event")
    times = [tm - t0 for tm, _ in ev]
    span = times[-1] - times[0]
    # 5 tokens at 20/s: the content events are 50 ms apart, ~200 ms in all.
    check(span >= 0.12, "events arrived within %.3fs of each other (times %s): not flushed "
          "one by one" % (span, ["%.3f" % x for x in times]))
    distinct = len({round(x, 2) for x in times})
    check(distinct >= 4, "events arrived in only %d bursts: %s"
          % (distinct, ["%.3f" % x for x in times]))
    # never two content tokens in one arrival
    contents = [(tm, e) for tm, e in ev if '"content":"' in e and '"content":""' not in e]
    for (a, _), (b, _) in zip(contents, contents[1:]):
        check(b - a >= 0.02, "two token events arrived %.3fs apart: %s"
              % (b - a, ["%.3f" % x for x in times]))


def test_stream_ttft_through_gateway(t):
    mock = t.mock()
    gw = t.gateway(mock=mock)
    c = RawConn(gw.port)
    t0 = time.monotonic()
    c.send(build_request("POST", "/v1/chat/completions", chat_body("ttft", stream=True),
                         {"x-mock-ttft-ms": "300", "x-mock-tokens": "3"}))
    r = c.read_response(timeout=10)
    c.close()
    eq(r.status, 200, "status")
    ev = _timed_events(r)
    check(ev, "no events")
    ttft = ev[0][0] - t0
    check(ttft >= 0.28, "first event after %.3fs, before the backend's 300 ms TTFT" % ttft)
    check(ttft <= 1.0, "first event after %.3fs, backend TTFT is 300 ms" % ttft)


# ---------------------------------------------------------------- usage

def _usage_of_stream(body):
    for ev in sse_events(body):
        d = sse_data(ev)
        if d and d.startswith("{"):
            u = json.loads(d).get("usage")
            if u:
                return u
    return None


def _tokens_metric(text, model, direction):
    m = re.search(r'^sluice_tokens_total\{model="%s",direction="%s"\} (\d+)$'
                  % (re.escape(model), direction), text, re.M)
    return int(m.group(1)) if m else 0


def test_usage_counted_in_metrics_and_access_log(t):
    mock = t.mock()
    gw = t.gateway(mock=mock, workers=1)
    reqs = [
        # (path, body, headers)
        ("/v1/chat/completions", chat_body("count my tokens please"),
         {"x-mock-cached-tokens": "3", "x-mock-reasoning-tokens": "2", "x-mock-tokens": "9"}),
        ("/v1/completions", {"model": "mock-small", "prompt": "a b c d e f"},
         {"x-mock-tokens": "4"}),
        ("/v1/chat/completions", chat_body("stream usage wanted", stream=True,
                                           stream_options={"include_usage": True}),
         {"x-mock-cached-tokens": "1", "x-mock-reasoning-tokens": "5", "x-mock-tokens": "7"}),
        ("/v1/chat/completions", chat_body("stream usage not wanted by the client", stream=True),
         {"x-mock-cached-tokens": "4", "x-mock-reasoning-tokens": "1", "x-mock-tokens": "6"}),
        ("/v1/chat/completions", chat_body("large model", model="mock-large"),
         {"x-mock-tokens": "11"}),
        ("/v1/embeddings", {"model": "mock-embed", "input": "embed these four words"}, {}),
    ]
    expected = []
    for path, body, h in reqs:
        stream = body.get("stream", False)
        if stream:
            b = dict(body)
            b["stream_options"] = {"include_usage": True}
            u = _usage_of_stream(stream_direct(mock.port, b, h).body)
            via = stream_direct(gw.port, body, h)
            got = _usage_of_stream(via.body)
            if body.get("stream_options"):
                eq(got, u, "usage event the client asked for")
            else:
                eq(got, None, "usage event the client did not ask for")
        else:
            st, _, d = post(mock.port, path, body, h)
            eq(st, 200, "direct status")
            u = json.loads(d)["usage"]
            st, _, _ = post(gw.port, path, body, h)
            eq(st, 200, "gateway status for %s" % path)
        check(u, "no usage from the mock for %s" % path)
        expected.append((path, body["model"], stream, u))

    def api_lines():
        return [x for x in gw.access_log() if x.get("path", "").startswith("/v1/")]
    lines = wait_until(lambda: len(api_lines()) >= len(reqs) and api_lines(), 3,
                       "%d access log lines" % len(reqs))
    eq(len(lines), len(reqs), "access log lines")
    for (path, model, stream, u), line in zip(expected, lines):
        what = "access log line for %s %s stream=%s" % (path, model, stream)
        eq(line.get("path"), path, what + " path")
        eq(line.get("model"), model, what + " model")
        eq(line.get("status"), 200, what + " status")
        eq(line.get("stream"), stream, what + " stream")
        eq(line.get("tokens_in"), u["prompt_tokens"], what + " tokens_in")
        eq(line.get("tokens_out"), u.get("completion_tokens"), what + " tokens_out")
        eq(line.get("tokens_cached"),
           (u.get("prompt_tokens_details") or {}).get("cached_tokens"), what + " tokens_cached")
        eq(line.get("tokens_reasoning"),
           (u.get("completion_tokens_details") or {}).get("reasoning_tokens"),
           what + " tokens_reasoning")
        eq(line.get("backend"), "mock", what + " backend")

    text = gw.metrics()
    for model in ("mock-small", "mock-large", "mock-embed"):
        us = [u for _, m, _, u in expected if m == model]
        want = {
            "input": sum(u["prompt_tokens"] for u in us),
            "output": sum(u.get("completion_tokens", 0) for u in us),
            "cached_input": sum((u.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
                          for u in us),
            "reasoning": sum((u.get("completion_tokens_details") or {})
                             .get("reasoning_tokens", 0) for u in us),
        }
        for direction, n in want.items():
            eq(_tokens_metric(text, model, direction), n,
               "sluice_tokens_total{model=%s,direction=%s}" % (model, direction))
    m = re.findall(r'^sluice_requests_total\{model="mock-small",backend="mock",status="200"\} (\d+)$',
                   text, re.M)
    eq(m, ["4"], "sluice_requests_total for mock-small 200")


# ---------------------------------------------------------------- routing

def _requests(mock):
    return mock.stats()["requests"]


def test_routing_round_robin_and_model_routes(t):
    a, b, c = t.mock(), t.mock(), t.mock()
    gw = t.gateway(backends=[
        {"name": "a", "url": a.url, "models": ["mock-small", "mock-large"]},
        {"name": "b", "url": b.url, "models": ["mock-small", "only-on-b"]},
        {"name": "c", "url": c.url, "models": ["*"]},
    ])
    # one keep-alive connection = one worker: strict alternation
    conn = RawConn(gw.port)
    seq = []
    for i in range(8):
        before = (_requests(a), _requests(b))
        conn.send(build_request("POST", "/v1/chat/completions", chat_body("rr %d" % i)))
        r = conn.read_response()
        eq(r.status, 200, "round-robin request status")
        after = (_requests(a), _requests(b))
        d = (after[0] - before[0], after[1] - before[1])
        check(d in ((1, 0), (0, 1)), "request %d reached a/b %r times" % (i, d))
        seq.append("a" if d == (1, 0) else "b")
    conn.close()
    for x, y in zip(seq, seq[1:]):
        check(x != y, "backends not alternating on one connection: %s" % "".join(seq))
    # new connections spread over both workers: still balanced
    a0, b0 = _requests(a), _requests(b)
    for i in range(20):
        st, _, _ = post(gw.port, "/v1/chat/completions", chat_body("rr new %d" % i))
        eq(st, 200, "status")
    da, db = _requests(a) - a0, _requests(b) - b0
    eq(da + db, 20, "requests reaching a and b")
    check(abs(da - db) <= 2, "unbalanced round robin: a=%d b=%d" % (da, db))
    eq(_requests(c), 0, "catch-all backend requests so far")

    # a model only on b
    a0, b0 = _requests(a), _requests(b)
    for i in range(4):
        st, _, body = post(gw.port, "/v1/chat/completions", chat_body("b only", model="only-on-b"))
        eq(st, 200, "only-on-b status")
        eq(json.loads(body)["model"], "only-on-b", "model echoed")
    eq((_requests(a) - a0, _requests(b) - b0), (0, 4), "only-on-b requests at (a, b)")
    # a model only on a
    a0, b0 = _requests(a), _requests(b)
    for i in range(3):
        st, _, _ = post(gw.port, "/v1/chat/completions", chat_body("a only", model="mock-large"))
        eq(st, 200, "mock-large status")
    eq((_requests(a) - a0, _requests(b) - b0), (3, 0), "mock-large requests at (a, b)")
    # anything else: the catch-all
    st, _, body = post(gw.port, "/v1/chat/completions", chat_body("who", model="unknown-model-x"))
    eq(st, 200, "catch-all status")
    st, _, body = post(gw.port, "/v1/embeddings", {"model": "some-embedder", "input": "x"})
    eq(st, 200, "catch-all embeddings status")
    eq(_requests(c), 2, "catch-all backend requests")

    st, _, body = http_request(gw.port, "GET", "/v1/models")
    eq(st, 200, "/v1/models status")
    doc = json.loads(body)
    eq(doc.get("object"), "list", "models object")
    ids = [m["id"] for m in doc["data"]]
    eq(sorted(ids), ["mock-large", "mock-small", "only-on-b"], "model ids (each once, no '*')")
    for m in doc["data"]:
        eq(m.get("object"), "model", "model entry object")


def test_unknown_model_without_catch_all_is_404(t):
    mock = t.mock()
    gw = t.gateway(mock=mock)
    for path, body in (("/v1/chat/completions", chat_body("x", model="gpt-nope")),
                       ("/v1/completions", {"model": "gpt-nope", "prompt": "x"}),
                       ("/v1/embeddings", {"model": "gpt-nope", "input": "x"}),
                       ("/v1/chat/completions", chat_body("x", model="gpt-nope", stream=True))):
        st, h, resp = post(gw.port, path, body)
        err = assert_openai_error(st, resp, 404, "invalid_request_error", "model_not_found",
                                  "unknown model on %s" % path)
        check("gpt-nope" in err["message"], "message names the model: %r" % err["message"])
        check(h.get("content-type", "").startswith("application/json"), "error content-type")
    eq(mock.stats()["requests"], 0, "requests reaching the backend")


def test_backend_credentials(t):
    mock = t.mock()
    other = t.mock()
    gw = t.gateway(backends=[
        {"name": "keyed", "url": mock.url, "api_key": "${TEST_KEY}", "models": ["mock-small"]},
        {"name": "open", "url": other.url, "models": ["mock-large"]},
    ], env={"TEST_KEY": "sk-backend-secret-123"})
    hdrs = {"Authorization": "Bearer sk-client-own", "api-key": "client-azure-key",
            "x-api-key": "client-x-key"}
    st, _, _ = post(gw.port, "/v1/chat/completions", chat_body("auth"), hdrs)
    eq(st, 200, "status")
    s = mock.stats()
    eq(s.get("last_bearer"), "sk-backend-secret-123", "bearer the backend got")
    eq(s.get("authorized"), 1, "authorized requests at the keyed backend")
    st, _, _ = post(gw.port, "/v1/chat/completions", chat_body("auth stream", stream=True), hdrs)
    eq(st, 200, "stream status")
    eq(mock.stats().get("last_bearer"), "sk-backend-secret-123", "bearer (stream)")
    # a backend without a key gets no Authorization at all, not the client's
    st, _, _ = post(gw.port, "/v1/chat/completions", chat_body("auth", model="mock-large"), hdrs)
    eq(st, 200, "status (open backend)")
    s = other.stats()
    eq(s.get("requests"), 1, "open backend requests")
    eq(s.get("authorized"), 0, "open backend authorized requests")
    eq(s.get("last_bearer"), None, "open backend last bearer")
