# SPDX-License-Identifier: Apache-2.0
"""Errors: OpenAI-shaped bodies with the right status, backend faults, cancellation."""
import json
import time

from run import (RawConn, assert_openai_error, build_request, chat_body, check, eq, fail,
                 free_port, http_request, post, sse_data, sse_events, wait_until)

CHAT = "/v1/chat/completions"


def _ok_after(gw, mock=None):
    """The gateway is alive and still relays a normal request."""
    gw.assert_alive()
    st, _, body = post(gw.port, CHAT, chat_body("still fine?"))
    eq(st, 200, "a normal request after the faults (body %r)" % body[:300])
    check(json.loads(body)["choices"], "normal response has choices")
    if mock:
        st, _, body = post(gw.port, CHAT, chat_body("stream still fine?", stream=True))
        eq(st, 200, "a normal stream after the faults")
        eq(sse_data(sse_events(body)[-1]), "[DONE]", "normal stream ends with [DONE]")


def _raw(gw, data, timeout=5):
    c = RawConn(gw.port)
    try:
        c.send(data)
        r = c.read_response(timeout=timeout)
        closed = None
        if (r.header("connection") or "").lower() == "close":
            closed = c.wait_closed(2)
        return r, closed
    finally:
        c.close()


def test_bad_request_bodies(t):
    mock = t.mock()
    gw = t.gateway(mock=mock)
    cases = [
        ("malformed JSON", b'{"model": "mock-small", "messages": [', None),
        ("not an object", b'["mock-small"]', None),
        ("empty body", b"{}", None),
        ("missing model", json.dumps({"messages": [{"role": "user", "content": "x"}]}).encode(),
         "model"),
        ("null model", json.dumps({"model": None, "messages": []}).encode(), "model"),
        ("model not a string", json.dumps({"model": 7, "messages": []}).encode(), None),
        ("stream not a boolean", json.dumps(chat_body("x", stream="yes")).encode(), None),
        ("duplicate model", b'{"model":"mock-small","model":"mock-large","messages":[]}', None),
    ]
    for what, body, word in cases:
        st, h, resp = post(gw.port, CHAT, body, {"Content-Type": "application/json"})
        err = assert_openai_error(st, resp, 400, "invalid_request_error", None, what)
        check(isinstance(err["code"], str) and err["code"], "%s: code %r" % (what, err["code"]))
        check(h.get("content-type", "").startswith("application/json"),
              "%s: content-type %r" % (what, h.get("content-type")))
        if word:
            check(word in err["message"], "%s: message %r" % (what, err["message"]))
    for path in ("/v1/completions", "/v1/embeddings"):
        st, _, resp = post(gw.port, path, b"{nope", {"Content-Type": "application/json"})
        assert_openai_error(st, resp, 400, "invalid_request_error", None, "bad JSON on " + path)
    eq(mock.stats()["requests"], 0, "bad requests reaching the backend")
    # a bad request on a keep-alive connection does not spoil the next one
    c = RawConn(gw.port)
    c.send(build_request("POST", CHAT, b"{bad"))
    r = c.read_response()
    eq(r.status, 400, "bad JSON status (keep-alive)")
    c.send(build_request("POST", CHAT, chat_body("next")))
    r = c.read_response()
    eq(r.status, 200, "next request on the same connection")
    c.close()
    _ok_after(gw)


def test_body_too_large_413(t):
    mock = t.mock()
    gw = t.gateway(mock=mock, max_body_bytes="1KiB")
    big = json.dumps(chat_body("w " * 2000)).encode()
    check(len(big) > 4000, "body size")
    r, closed = _raw(gw, build_request("POST", CHAT, big))
    assert_openai_error(r.status, r.body, 413, "invalid_request_error", None, "content-length 4KiB")
    # chunked: the limit applies to the decoded body
    head = build_request("POST", CHAT, b"", {"Transfer-Encoding": "chunked",
                                             "Content-Type": "application/json"})
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(big[i:i + 500]), big[i:i + 500])
                      for i in range(0, len(big), 500)) + b"0\r\n\r\n"
    r, closed = _raw(gw, head + chunks)
    assert_openai_error(r.status, r.body, 413, "invalid_request_error", None, "chunked 4KiB")
    # just under the limit is fine
    small = json.dumps(chat_body("w " * 400)).encode()
    check(len(small) <= 1024, "small body size %d" % len(small))
    r, _ = _raw(gw, build_request("POST", CHAT, small))
    eq(r.status, 200, "body under the limit")
    eq(mock.stats()["requests"], 1, "requests reaching the backend")
    _ok_after(gw)


def test_head_too_large_431(t):
    mock = t.mock()
    gw = t.gateway(mock=mock, max_header_bytes="2KiB")
    r, closed = _raw(gw, build_request("POST", CHAT, chat_body("x"), {"X-Big": "a" * 20000}))
    assert_openai_error(r.status, r.body, 431, None, None, "20 KB header")
    r, closed = _raw(gw, build_request("GET", "/v1/models", b"",
                                       {"X-Big-%d" % i: "b" * 100 for i in range(30)}))
    assert_openai_error(r.status, r.body, 431, None, None, "many headers over 2KiB")
    r, _ = _raw(gw, build_request("POST", CHAT, chat_body("x"), {"X-Small": "a" * 1000}))
    eq(r.status, 200, "1 KB header under the 2KiB limit")
    _ok_after(gw)


def test_slow_client_408(t):
    mock = t.mock()
    gw = t.gateway(mock=mock, client_header="500ms", client_body="500ms")
    c = RawConn(gw.port)
    t0 = time.monotonic()
    c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Le")
    r = c.read_response(timeout=5)
    dt = time.monotonic() - t0
    assert_openai_error(r.status, r.body, 408, None, None, "half a head")
    check(0.4 <= dt <= 2.5, "408 after %.2fs, client_header is 500ms" % dt)
    check(c.wait_closed(3), "connection not closed after 408")
    c.close()
    # the body too
    c = RawConn(gw.port)
    t0 = time.monotonic()
    c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"mo")
    r = c.read_response(timeout=5)
    dt = time.monotonic() - t0
    assert_openai_error(r.status, r.body, 408, None, None, "half a body")
    check(0.4 <= dt <= 2.5, "408 after %.2fs, client_body is 500ms" % dt)
    check(c.wait_closed(3), "connection not closed after 408 (body)")
    c.close()
    eq(mock.stats()["requests"], 0, "requests reaching the backend")
    _ok_after(gw)


def test_unknown_path_and_wrong_method(t):
    mock = t.mock()
    gw = t.gateway(mock=mock)
    for method, path in (("GET", "/v2/chat"), ("POST", "/v1/nothing"), ("GET", "/"),
                         ("POST", "/v1/chat/completions/x")):
        st, _, body = http_request(gw.port, method, path,
                                   body=b"{}" if method == "POST" else None)
        assert_openai_error(st, body, 404, "invalid_request_error", None, "%s %s" % (method, path))
    for method, path in (("GET", CHAT), ("PUT", CHAT), ("DELETE", "/v1/embeddings"),
                         ("POST", "/v1/models")):
        st, _, body = http_request(gw.port, method, path,
                                   body=b"{}" if method in ("PUT", "POST") else None)
        assert_openai_error(st, body, 405, "invalid_request_error", None, "%s %s" % (method, path))
    eq(mock.stats()["requests"], 0, "requests reaching the backend")
    _ok_after(gw)


def test_backend_error_status_passes_through(t):
    mock = t.mock()
    gw = t.gateway(mock=mock)
    for status in (400, 401, 429, 500, 503):
        for body in (chat_body("err"), chat_body("err stream", stream=True)):
            h = {"x-mock-status": str(status)}
            d_st, d_h, d_body = post(mock.port, CHAT, body, h)
            g_st, g_h, g_body = post(gw.port, CHAT, body, h)
            what = "x-mock-status %d stream=%s" % (status, body.get("stream", False))
            eq(d_st, status, what + " direct status")
            eq(g_st, d_st, what + " status")
            eq(g_body, d_body, what + " body")
            eq(g_h.get("content-type"), d_h.get("content-type"), what + " content-type")
            if "retry-after" in d_h:
                eq(g_h.get("retry-after"), d_h["retry-after"], what + " retry-after")
            assert_openai_error(g_st, g_body, status, None, None, what)
    _ok_after(gw, mock)


def _fault(gw, fault, body, headers=None, timeout=10):
    h = {"x-mock-fault": fault}
    h.update(headers or {})
    return post(gw.port, CHAT, body, h, timeout=timeout)


def test_backend_faults_before_response(t):
    mock = t.mock()
    gw = t.gateway(mock=mock, upstream_first_byte="500ms", upstream_idle="500ms")
    for fault, codes in (("reset", ("upstream_reset", "upstream_unavailable")),
                         ("close", ("upstream_reset", "upstream_unavailable")),
                         ("garbage", ("upstream_protocol_error", "upstream_reset"))):
        for stream in (False, True):
            st, _, body = _fault(gw, fault, chat_body("fault", stream=stream))
            assert_openai_error(st, body, 502, "server_error", codes,
                                "x-mock-fault %s stream=%s" % (fault, stream))
            # a fault must not poison the pooled connections
            st, _, body = post(gw.port, CHAT, chat_body("after %s" % fault))
            eq(st, 200, "request after x-mock-fault %s" % fault)
    for stream in (False, True):
        t0 = time.monotonic()
        st, _, body = _fault(gw, "stall", chat_body("stall", stream=stream))
        dt = time.monotonic() - t0
        assert_openai_error(st, body, 504, "server_error", "upstream_timeout",
                            "x-mock-fault stall stream=%s" % stream)
        check(0.4 <= dt <= 3, "504 after %.2fs, upstream_first_byte is 500ms" % dt)
    wait_until(lambda: mock.stats()["active"] == 0, 3, "mockllm active back to 0")
    # non-stream faults half way through the body
    st, _, body = _fault(gw, "reset-mid-stream", chat_body("mid reset"), {"x-mock-tokens": "200"})
    assert_openai_error(st, body, 502, "server_error", None, "reset-mid-stream, non-stream")
    st, _, body = _fault(gw, "stall-mid-stream", chat_body("mid stall"), {"x-mock-tokens": "200"})
    check(st in (502, 504), "stall-mid-stream non-stream status %d" % st)
    assert_openai_error(st, body, st, "server_error", None, "stall-mid-stream, non-stream")
    wait_until(lambda: mock.stats()["active"] == 0, 3, "mockllm active back to 0")
    _ok_after(gw, mock)


def test_backend_down_502(t):
    mock = t.mock()
    dead = free_port()
    gw = t.gateway(backends=[
        {"name": "dead", "url": "http://127.0.0.1:%d/v1" % dead, "models": ["dead-model"]},
        {"name": "mock", "url": mock.url, "models": ["mock-small"]},
    ])
    for stream in (False, True):
        st, _, body = post(gw.port, CHAT, chat_body("x", model="dead-model", stream=stream))
        assert_openai_error(st, body, 502, "server_error", "upstream_unavailable",
                            "backend down, stream=%s" % stream)
    text = gw.metrics()
    check('sluice_upstream_errors_total{backend="dead"' in text,
          "no upstream error metric for the dead backend")
    _ok_after(gw)


def _read_failed_stream(gw, fault, headers):
    c = RawConn(gw.port)
    try:
        t0 = time.monotonic()
        h = {"x-mock-fault": fault, "x-mock-tokens": "20", "x-mock-tps": "50"}
        h.update(headers)
        c.send(build_request("POST", CHAT, chat_body("mid fault", stream=True), h))
        r = c.read_response(timeout=6)
        dt = time.monotonic() - t0
        eq(r.status, 200, "%s: stream status" % fault)
        check(r.complete, "%s: chunked body not terminated" % fault)
        ev = sse_events(r.body)
        check(len(ev) >= 2, "%s: want some events before the error, got %r" % (fault, r.body))
        data = [sse_data(e) for e in ev]
        check("[DONE]" not in data, "%s: a failed stream must not end with [DONE]" % fault)
        try:
            last = json.loads(data[-1])
        except ValueError:
            fail("%s: last event is not JSON: %r" % (fault, data[-1]))
        check("error" in last, "%s: last event is not an error event: %r" % (fault, data[-1]))
        for k in ("message", "type", "code"):
            check(k in last["error"], "%s: error event has no %s: %r" % (fault, k, last))
        for d in data[:-1]:
            check("choices" in json.loads(d), "%s: unexpected event %r" % (fault, d))
        check(c.wait_closed(3), "%s: connection not closed after the failed stream" % fault)
        return last["error"], dt
    finally:
        c.close()


def test_stream_fails_mid_way(t):
    mock = t.mock()
    gw = t.gateway(mock=mock, upstream_idle="500ms")
    err, dt = _read_failed_stream(gw, "stall-mid-stream", {})
    eq(err["code"], "upstream_timeout", "stall-mid-stream error code")
    check(dt >= 0.45, "stall-mid-stream failed after %.2fs, upstream_idle is 500ms" % dt)
    err, dt = _read_failed_stream(gw, "reset-mid-stream", {})
    check(err["code"] in ("upstream_reset", "upstream_protocol_error"),
          "reset-mid-stream error code %r" % err["code"])
    wait_until(lambda: mock.stats()["active"] == 0, 3, "mockllm active back to 0")
    lines = wait_until(lambda: [x for x in gw.access_log() if x.get("stream")
                                and x.get("error")] or None, 3, "access log error lines")
    codes = sorted(x["error"] for x in lines)
    check("upstream_timeout" in codes, "access log errors %r" % codes)
    _ok_after(gw, mock)


def test_all_faults_one_gateway_survives(t):
    """Every fault, several at once, on one gateway; then it still works."""
    import threading
    mock = t.mock()
    gw = t.gateway(mock=mock, upstream_first_byte="700ms", upstream_idle="700ms")
    errors = []

    def one(i, fault, stream):
        try:
            h = {"x-mock-tokens": "30", "x-mock-tps": "100"}
            if fault.startswith("status"):
                h["x-mock-status"] = fault[6:]
            else:
                h["x-mock-fault"] = fault
            st, _, body = post(gw.port, CHAT, chat_body("f%d" % i, stream=stream), h, timeout=10)
            if stream and st == 200:
                check(b'"error"' in body, "%s stream: no error event" % fault)
            elif st < 400:
                errors.append("%s stream=%s: status %d" % (fault, stream, st))
        except Exception as e:  # noqa: BLE001
            if not (stream and fault.endswith("mid-stream")):
                errors.append("%s stream=%s: %s: %s" % (fault, stream, type(e).__name__, e))

    faults = ["reset", "reset-mid-stream", "stall", "stall-mid-stream", "garbage", "close",
              "status429", "status500", "status503"]
    threads = [threading.Thread(target=one, args=(i, f, s))
               for i, (f, s) in enumerate((f, s) for f in faults for s in (False, True))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(15)
    check(not any(th.is_alive() for th in threads), "fault requests still running after 15s")
    check(not errors, "; ".join(errors))
    wait_until(lambda: mock.stats()["active"] == 0, 3, "mockllm active back to 0")
    _ok_after(gw, mock)


def test_client_disconnect_cancels_upstream(t):
    mock = t.mock()
    gw = t.gateway(mock=mock)
    c = RawConn(gw.port)
    c.send(build_request("POST", CHAT, chat_body("slow stream", stream=True),
                         {"x-mock-tps": "5", "x-mock-tokens": "50"}))
    first = []
    c.read_response(timeout=5, on_chunk=lambda r, d: (first.append(d), False)[1])
    check(first, "no first event")
    s = mock.stats()
    eq(s["active"], 1, "mockllm active streams while streaming")
    aborted = s["streams_aborted"]
    c.close()
    t0 = time.monotonic()
    wait_until(lambda: mock.stats()["streams_aborted"] > aborted and mock.stats()["active"] == 0,
               2, "streams_aborted to increase and active to reach 0")
    check(time.monotonic() - t0 < 2, "cancel too slow")
    eq(mock.stats()["streams_completed"], 0, "completed streams")
    # the same for a request still waiting for its first byte
    c = RawConn(gw.port)
    c.send(build_request("POST", CHAT, chat_body("slow non-stream"), {"x-mock-ttft-ms": "5000"}))
    wait_until(lambda: mock.stats()["active"] == 1, 2, "mockllm to get the request")
    c.close()
    wait_until(lambda: mock.stats()["active"] == 0, 2, "mockllm active back to 0 (non-stream)")
    lines = wait_until(lambda: [x for x in gw.access_log() if x.get("path") == CHAT]
                       if len([x for x in gw.access_log() if x.get("path") == CHAT]) >= 2
                       else None, 3, "access log lines for the cancelled requests")
    for x in lines:
        eq(x.get("error"), "client_closed_request", "access log error of a cancelled request")
    _ok_after(gw, mock)
