# SPDX-License-Identifier: Apache-2.0
"""HTTP/1.1 on the client side: keep-alive, pipelining, chunked bodies,
100-continue, large bodies, HTTP/1.0, many connections, the connection limit."""
import json
import selectors
import socket
import threading
import time

from run import (RawConn, assert_openai_error, build_request, chat_body, check, eq, fail,
                 post, wait_until)

CHAT = "/v1/chat/completions"


def _direct(mock, path, body, headers=None):
    st, _, d = post(mock.port, path, body, headers)
    eq(st, 200, "direct status")
    return d


def test_keepalive_many_requests_one_socket(t):
    mock = t.mock()
    gw = t.gateway(mock=mock)
    reqs = []
    for i in range(30):
        if i % 3 == 0:
            reqs.append((CHAT, chat_body("keep alive %d" % i)))
        elif i % 3 == 1:
            reqs.append(("/v1/completions", {"model": "mock-small", "prompt": "ka %d" % i}))
        else:
            reqs.append(("/v1/embeddings", {"model": "mock-embed", "input": "ka %d" % i}))
    want = [_direct(mock, p, b) for p, b in reqs]
    before = _conns_total(gw)
    c = RawConn(gw.port)
    for i, (p, b) in enumerate(reqs):
        c.send(build_request("POST", p, b))
        r = c.read_response()
        eq(r.status, 200, "request %d status" % i)
        eq(r.body, want[i], "request %d body" % i)
        check((r.header("connection") or "").lower() != "close",
              "request %d: gateway closes a keep-alive connection" % i)
    # local endpoints and a stream on the same socket
    c.send(build_request("GET", "/v1/models"))
    eq(c.read_response().status, 200, "models on the same socket")
    c.send(build_request("POST", CHAT, chat_body("s", stream=True)))
    r = c.read_response()
    eq(r.status, 200, "stream on the same socket")
    check(r.complete, "stream complete")
    c.send(build_request("GET", "/healthz"))
    eq(c.read_response().status, 200, "healthz after the stream")
    c.close()
    # only one client connection was used (scrapes, on the admin listener,
    # are not client connections)
    eq(_conns_total(gw) - before, 1, "client connections opened for all those requests")


def _conns_total(gw):
    for line in gw.metrics().splitlines():
        if line.startswith("sluice_connections_total "):
            return int(line.split()[1])
    fail("no sluice_connections_total metric")


def test_pipelined_requests_answered_in_order(t):
    mock = t.mock()
    gw = t.gateway(mock=mock)
    b1 = chat_body("first pipelined", max_tokens=5)
    b2 = {"model": "mock-small", "prompt": "second pipelined"}
    b3 = chat_body("third", stream=True, stream_options={"include_usage": True})
    w1 = _direct(mock, CHAT, b1)
    w2 = _direct(mock, "/v1/completions", b2)
    c = RawConn(gw.port)
    # the first answers slowly so the others wait behind it
    c.send(build_request("POST", CHAT, b1, {"x-mock-ttft-ms": "200"}) +
           build_request("POST", "/v1/completions", b2) +
           build_request("GET", "/healthz") +
           build_request("POST", CHAT, b3))
    r1 = c.read_response()
    r2 = c.read_response()
    r3 = c.read_response()
    r4 = c.read_response()
    eq((r1.status, r2.status, r3.status, r4.status), (200, 200, 200, 200), "statuses")
    eq(r1.body, w1, "first response body")
    eq(r2.body, w2, "second response body")
    eq(json.loads(r3.body), {"status": "ok"}, "third response body")
    check(r4.complete and r4.body.rstrip().endswith(b"data: [DONE]"), "fourth response: stream")
    c.close()


def test_chunked_request_body(t):
    mock = t.mock()
    gw = t.gateway(mock=mock)
    body = json.dumps(chat_body("chunked " * 300)).encode()
    want = _direct(mock, CHAT, body)
    c = RawConn(gw.port)
    c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n")
    pieces = [body[i:i + 333] for i in range(0, len(body), 333)]
    for i, p in enumerate(pieces):
        chunk = b"%x;ext=1\r\n%s\r\n" % (len(p), p) if i == 1 else b"%x\r\n%s\r\n" % (len(p), p)
        # split each chunk across writes, including inside the size line
        c.send(chunk[:1])
        time.sleep(0.01)
        c.send(chunk[1:])
        time.sleep(0.01)
    c.send(b"0\r\nX-Trailer: y\r\n\r\n")
    r = c.read_response()
    eq(r.status, 200, "chunked request status")
    eq(r.body, want, "chunked request response body")
    # the connection carries on
    c.send(build_request("POST", CHAT, body))
    r = c.read_response()
    eq(r.body, want, "next request after a chunked one")
    c.close()


def test_expect_100_continue(t):
    mock = t.mock()
    gw = t.gateway(mock=mock)
    body = json.dumps(chat_body("expect continue")).encode()
    want = _direct(mock, CHAT, body)
    c = RawConn(gw.port)
    c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
    interim = c.read_head(timeout=2)
    eq(interim.status, 100, "interim status")
    c.send(body)
    r = c.read_response()
    eq(r.status, 200, "final status")
    eq(r.body, want, "body after 100-continue")
    c.close()


def test_large_body_2mib(t):
    mock = t.mock()
    gw = t.gateway(mock=mock, max_body_bytes="8MiB")
    words = " ".join("w%d" % (i % 1000) for i in range(450000))
    body = json.dumps(chat_body(words, max_tokens=8)).encode()
    check(len(body) > 2 * 1024 * 1024, "body is %d bytes" % len(body))
    want = _direct(mock, CHAT, body)
    st, _, got = post(gw.port, CHAT, body, {"Content-Type": "application/json"}, timeout=30)
    eq(st, 200, "2 MiB request status")
    eq(json.loads(got)["usage"]["prompt_tokens"], json.loads(want)["usage"]["prompt_tokens"],
       "prompt_tokens (the backend saw the same prompt)")
    eq(got, want, "2 MiB request response body")
    # chunked, too
    c = RawConn(gw.port, timeout=30)
    c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    step = 256 * 1024 + 7
    for i in range(0, len(body), step):
        p = body[i:i + step]
        c.send(b"%x\r\n%s\r\n" % (len(p), p))
    c.send(b"0\r\n\r\n")
    r = c.read_response(timeout=30)
    eq(r.status, 200, "2 MiB chunked status")
    eq(r.body, want, "2 MiB chunked response body")
    c.close()


def test_http10_answered_and_closed(t):
    mock = t.mock()
    gw = t.gateway(mock=mock)
    body = chat_body("old client")
    want = _direct(mock, CHAT, body)
    c = RawConn(gw.port)
    c.send(build_request("POST", CHAT, body, version="HTTP/1.0"))
    r = c.read_response()
    eq(r.status, 200, "HTTP/1.0 status")
    eq(r.body, want, "HTTP/1.0 body")
    check(r.header("transfer-encoding") is None, "chunked response to an HTTP/1.0 client")
    check(c.wait_closed(3), "connection left open after an HTTP/1.0 response")
    c.close()
    # HTTP/1.0 GET of a local endpoint
    c = RawConn(gw.port)
    c.send(b"GET /healthz HTTP/1.0\r\n\r\n")
    r = c.read_response()
    eq(r.status, 200, "HTTP/1.0 healthz")
    check(c.wait_closed(3), "connection left open after HTTP/1.0 healthz")
    c.close()
    # Connection: close on HTTP/1.1
    c = RawConn(gw.port)
    c.send(build_request("POST", CHAT, body, {"Connection": "close"}))
    r = c.read_response()
    eq(r.body, want, "Connection: close body")
    eq((r.header("connection") or "").lower(), "close", "Connection header")
    check(c.wait_closed(3), "connection left open after Connection: close")
    c.close()


PROMPTS = ["concurrent prompt number %d" % i for i in range(10)]


def _expected(mock):
    return [_direct(mock, CHAT, chat_body(p, max_tokens=12)) for p in PROMPTS]


def test_1000_requests_100_keepalive_sockets(t):
    mock = t.mock("--threads", "2")
    gw = t.gateway(mock=mock)
    want = _expected(mock)
    errors = []
    done = [0]
    lock = threading.Lock()

    def client(k):
        try:
            c = RawConn(gw.port, timeout=30)
            for i in range(10):
                j = (k + i) % len(PROMPTS)
                c.send(build_request("POST", CHAT, chat_body(PROMPTS[j], max_tokens=12)))
                r = c.read_response(timeout=30)
                if r.status != 200 or r.body != want[j]:
                    errors.append("socket %d request %d: status %d body %r"
                                  % (k, i, r.status, r.body[:200]))
                    break
                with lock:
                    done[0] += 1
            c.close()
        except Exception as e:  # noqa: BLE001
            errors.append("socket %d: %s: %s" % (k, type(e).__name__, e))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(100)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    check(not any(th.is_alive() for th in threads), "clients still running after 60s")
    check(not errors, "%d errors, first: %s" % (len(errors), errors[:3]))
    eq(done[0], 1000, "requests answered")
    eq(mock.stats()["requests"], 1000 + len(PROMPTS), "requests at the backend")


def test_1000_concurrent_sockets(t):
    mock = t.mock("--threads", "2")
    gw = t.gateway(mock=mock)
    want = _expected(mock)
    n = 1000
    sel = selectors.DefaultSelector()
    socks = []
    try:
        for k in range(n):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", gw.port))
            socks.append(s)
            j = k % len(PROMPTS)
            state = {"k": k, "out": build_request("POST", CHAT,
                                                  chat_body(PROMPTS[j], max_tokens=12)),
                     "in": b"", "want": want[j], "done": False}
            sel.register(s, selectors.EVENT_WRITE, state)
        deadline = time.monotonic() + 60
        pending = n
        results = {}
        while pending and time.monotonic() < deadline:
            for key, ev in sel.select(timeout=1):
                s, st = key.fileobj, key.data
                if ev & selectors.EVENT_WRITE:
                    try:
                        m = s.send(st["out"])
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError as e:
                        results[st["k"]] = "send: %s" % e
                        sel.unregister(s)
                        pending -= 1
                        continue
                    st["out"] = st["out"][m:]
                    if not st["out"]:
                        sel.modify(s, selectors.EVENT_READ, st)
                    continue
                try:
                    d = s.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as e:
                    d = None
                    results[st["k"]] = "recv: %s" % e
                if d:
                    st["in"] += d
                    head, sep, rest = st["in"].partition(b"\r\n\r\n")
                    if not sep:
                        continue
                    cl = [int(l.split(b":", 1)[1]) for l in head.split(b"\r\n")
                          if l.lower().startswith(b"content-length:")]
                    if not cl or len(rest) < cl[0]:
                        continue
                    ok = head.startswith(b"HTTP/1.1 200") and rest[:cl[0]] == st["want"]
                    results[st["k"]] = "ok" if ok else "bad: %r" % st["in"][:200]
                else:
                    results.setdefault(st["k"], "closed early: %r" % st["in"][:200])
                sel.unregister(s)
                pending -= 1
        bad = {k: v for k, v in results.items() if v != "ok"}
        check(not pending, "%d of %d sockets unanswered after 60s" % (pending, n))
        check(not bad, "%d bad responses, e.g. %s" % (len(bad), list(bad.items())[:3]))
        eq(len(results), n, "responses")
    finally:
        for s in socks:
            s.close()
        sel.close()


def test_connection_limit(t):
    mock = t.mock()
    gw = t.gateway(mock=mock, workers=1, max_connections=4)
    idle = []
    for i in range(4):
        c = RawConn(gw.port)
        c.send(build_request("GET", "/healthz"))
        eq(c.read_response().status, 200, "connection %d" % i)
        idle.append(c)
    fifth = RawConn(gw.port)
    r = fifth.read_response(timeout=3)
    err = assert_openai_error(r.status, r.body, 503, None, "too_many_connections",
                              "the fifth connection")
    check(fifth.wait_closed(3), "the fifth connection is not closed")
    fifth.close()
    # the four still work
    for i, c in enumerate(idle):
        c.send(build_request("POST", CHAT, chat_body("limit %d" % i)))
        eq(c.read_response().status, 200, "request on held connection %d" % i)
    idle.pop().close()

    def new_conn_works():
        c = RawConn(gw.port)
        try:
            c.send(build_request("GET", "/healthz"))
            return c.read_response(timeout=2).status == 200
        except (EOFError, ConnectionResetError, BrokenPipeError):
            return False
        finally:
            c.close()
    wait_until(new_conn_works, 3, "a new connection to work after one closed")
    for c in idle:
        c.close()
    text = wait_until(lambda: (lambda m: m if "\nsluice_connections_rejected_total 0\n" not in m
                               else None)(gw.metrics()), 3, "rejected connections metric")
    check("\nsluice_connections_rejected_total" in text, "no rejected metric")


def test_http10_stream_is_close_delimited(t):
    """An HTTP/1.0 client cannot read chunked framing (RFC 9112 section 7.1:
    a server MUST NOT send chunked to a 1.0 request): the stream must be
    delimited by closing the connection instead."""
    mock = t.mock()
    gw = t.gateway(mock=mock)
    body = chat_body("old client stream", stream=True, stream_options={"include_usage": True})
    h = {"x-mock-tokens": "3"}
    c = RawConn(mock.port)
    c.send(build_request("POST", CHAT, body, h, version="HTTP/1.0"))
    want = c.read_response()
    c.close()
    c = RawConn(gw.port)
    c.send(build_request("POST", CHAT, body, h, version="HTTP/1.0"))
    r = c.read_response(head_only=True)
    eq(r.status, 200, "status")
    eq(r.header("transfer-encoding"), None,
       "Transfer-Encoding in a response to an HTTP/1.0 request")
    deadline = time.monotonic() + 5
    try:
        while True:
            c._fill(deadline)
    except EOFError:
        pass
    except TimeoutError:
        fail("connection not closed at the end of the stream")
    got = c.buf
    c.close()
    eq(got, want.body, "close-delimited stream body")


def test_keepalive_idle_timeout(t):
    mock = t.mock()
    gw = t.gateway(mock=mock, keepalive="500ms")
    c = RawConn(gw.port)
    c.send(build_request("GET", "/healthz"))
    eq(c.read_response().status, 200, "healthz")
    t0 = time.monotonic()
    check(c.wait_closed(5), "idle keep-alive connection not closed within 5s (keepalive 500ms)")
    dt = time.monotonic() - t0
    check(0.4 <= dt <= 3, "idle connection closed after %.2fs, keepalive is 500ms" % dt)
    c.close()
