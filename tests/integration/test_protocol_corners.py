# SPDX-License-Identifier: Apache-2.0
"""Protocol corners: a client that never speaks, absolute-form targets,
transfer-codings after chunked, hop-by-hop headers a peer names in its
Connection header, impossible status codes, model errors, the end of a
drain, and one input policy for plain and TLS clients."""
import json
import os
import signal
import socket
import ssl
import time

import pki
from rawbackend import RawBackend
from run import (RawConn, assert_openai_error, build_request, chat_body, check, eq, post,
                 sse_data, sse_events, wait_until)

CHAT = "/v1/chat/completions"


def test_connection_that_sends_nothing_gets_the_header_timeout(t):
    mock = t.mock()
    gw = t.gateway(mock=mock, client_header="1s", keepalive="60s")
    silent = RawConn(gw.port)
    # Closed without an answer once client_header (1s) is over: there is
    # no request to answer.  Before, it was held for keepalive (60s).
    check(silent.wait_closed(15), "a connection that sent nothing was not closed "
          "within 15s (client_header is 1s, keepalive 60s)")
    eq(silent.buf, b"", "bytes sent to a client that never spoke")
    silent.close()
    # Between requests, keepalive applies as before.
    c = RawConn(gw.port)
    c.send(build_request("GET", "/healthz"))
    eq(c.read_response().status, 200, "first request")
    time.sleep(2.5)
    c.send(build_request("GET", "/healthz"))
    eq(c.read_response().status, 200, "a request after an idle time past client_header")
    c.close()


def test_absolute_form_target_is_accepted(t):
    mock = t.mock()
    gw = t.gateway(mock=mock)
    body = chat_body("absolute form")
    _, _, want = post(mock.port, CHAT, body)
    for target in ("http://127.0.0.1:%d/v1/chat/completions" % gw.port,
                   "HTTP://gateway.example/v1/chat/completions",
                   "https://gateway.example/v1/chat/completions"):
        c = RawConn(gw.port)
        c.send(build_request("POST", target, body))
        r = c.read_response()
        c.close()
        eq(r.status, 200, "POST %s" % target)
        eq(r.body, want, "body of POST %s" % target)
    c = RawConn(gw.port)
    c.send(build_request("GET", "http://gateway.example/healthz?probe=1"))
    eq(c.read_response().status, 200, "GET absolute-form /healthz")
    c.close()
    eq(mock.stats()["requests"], 4, "requests that reached the backend")


def test_transfer_coding_after_chunked_is_400_and_close(t):
    mock = t.mock()
    gw = t.gateway(mock=mock)
    chunked = b"5\r\nhello\r\n0\r\n\r\n"
    for te, status in (("chunked, identity", 400), ("chunked, gzip", 400), ("identity", 400),
                       ("gzip", 400), ("gzip, chunked", 501)):
        c = RawConn(gw.port)
        c.send(build_request("POST", CHAT, b"", {"Transfer-Encoding": te}) + chunked)
        r = c.read_response()
        assert_openai_error(r.status, r.body, status, None, None, "Transfer-Encoding: %s" % te)
        eq((r.header("connection") or "").lower(), "close", "%s: Connection" % te)
        check(c.wait_closed(3), "%s: connection not closed" % te)
        c.close()
    eq(mock.stats()["requests"], 0, "requests that reached the backend")


def _json_response(status_line, extra_headers, body=b"{}"):
    return (b"%s\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s"
            % (status_line, extra_headers, len(body), body))


def test_hop_by_hop_headers_named_in_connection_are_not_forwarded(t):
    def respond(sock, req):
        sock.sendall(_json_response(
            b"HTTP/1.1 200 OK",
            b"Connection: keep-alive, X-Backend-Hop\r\nX-Backend-Hop: internal\r\n"
            b"X-Kept: yes\r\n"))
        return True
    backend = RawBackend(t, respond)
    gw = t.gateway(backends=[{"name": "raw", "url": backend.url, "models": ["mock-small"]}])
    c = RawConn(gw.port)
    c.send(build_request("POST", CHAT, chat_body("hop"),
                         {"Connection": "X-Client-Hop", "X-Client-Hop": "secret",
                          "X-Other": "passed"}))
    r = c.read_response()
    c.close()
    eq(r.status, 200, "status")
    eq(r.header("x-backend-hop"), None, "a header the backend's Connection names")
    eq(r.header("x-kept"), "yes", "an end-to-end header of the backend")
    req = backend.requests[-1].decode("latin-1").lower()
    check("x-client-hop" not in req, "a header the client's Connection names reached the "
          "backend: %r" % req[:600])
    check("x-other: passed" in req, "an end-to-end header of the client was dropped")


def test_backend_status_outside_100_to_599_is_502(t):
    statuses = [b"600 Odd", b"999 Nope"]

    def respond(sock, req):
        sock.sendall(_json_response(b"HTTP/1.1 " + statuses.pop(0), b""))
        return True
    backend = RawBackend(t, respond)
    gw = t.gateway(backends=[{"name": "raw", "url": backend.url, "models": ["mock-small"]}])
    for what in ("600", "999"):
        st, _, body = post(gw.port, CHAT, chat_body("odd status"))
        assert_openai_error(st, body, 502, "server_error", "upstream_protocol_error",
                            "backend status %s" % what)


def test_model_errors_have_their_own_codes(t):
    mock = t.mock()
    gw = t.gateway(mock=mock)
    cases = [
        (b'{"model":"mock-small","model":"mock-large","messages":[]}', 400, "duplicate_model"),
        (json.dumps({"model": 7, "messages": []}).encode(), 400, "invalid_model"),
        (json.dumps({"model": ["mock-small"], "messages": []}).encode(), 400, "invalid_model"),
        (json.dumps({"model": "a\nb", "messages": []}).encode(), 400, "invalid_model"),
        (json.dumps({"model": "m" * 257, "messages": []}).encode(), 400, "model_too_long"),
        (json.dumps({"messages": []}).encode(), 400, "missing_model"),
        (json.dumps({"model": "", "messages": []}).encode(), 400, "missing_model"),
        # 256 bytes is a name the gateway accepts (and no backend serves).
        (json.dumps({"model": "m" * 256, "messages": []}).encode(), 404, "model_not_found"),
    ]
    for body, status, code in cases:
        st, _, resp = post(gw.port, CHAT, body, {"Content-Type": "application/json"})
        assert_openai_error(st, resp, status, "invalid_request_error", code, body[:60])
    eq(mock.stats()["requests"], 0, "requests that reached the backend")


def test_stream_cut_by_drain_timeout_ends_with_an_error_event(t):
    mock = t.mock()
    gw = t.gateway(mock=mock, drain="1s")
    c = RawConn(gw.port)
    c.send(build_request("POST", CHAT, chat_body("longer than the drain", stream=True),
                         {"x-mock-tps": "10", "x-mock-tokens": "400"}))
    first = []
    r = c.read_response(timeout=5, on_chunk=lambda resp, d: first.append(d) or False)
    eq(r.status, 200, "stream status")
    gw.signal(signal.SIGTERM)
    # The rest of the stream: the events until the drain ran out, then an
    # OpenAI error event and the terminating chunk.
    rest = []
    while True:
        line, _ = c._read_until(b"\r\n", time.monotonic() + 10)
        size = int(line.strip(), 16)
        if size == 0:
            eq(c._read_exact(2, time.monotonic() + 5)[0], b"\r\n", "end of the last chunk")
            break
        data, _ = c._read_exact(size + 2, time.monotonic() + 10)
        rest.append(data[:-2])
    events = sse_events(b"".join(first + rest))
    err = json.loads(sse_data(events[-1]))
    eq(err["error"]["code"], "drain_timeout", "code of the stream's last event")
    eq(err["error"]["type"], "server_error", "type of the stream's last event")
    check(c.wait_closed(5), "the connection closed after the stream")
    c.close()
    eq(gw.wait(10), 0, "sluiced exit status")
    chats = [r for r in gw.access_log() if r.get("path") == CHAT]
    eq(len(chats), 1, "chat lines in the access log")
    eq(chats[0]["status"], 200, "logged status of the cut stream")
    eq(chats[0]["error"], "drain_timeout", "logged error of the cut stream")


def _flood_while_streaming(port, tls=None):
    """A stream request, then 4 MiB of bytes the gateway must buffer if it
    reads them: True when the gateway closes the connection first."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    s = tls.wrap_socket(raw, server_hostname="localhost") if tls else raw
    try:
        s.sendall(build_request("POST", CHAT, chat_body("flood", stream=True),
                                {"x-mock-tps": "20", "x-mock-tokens": "400"}))
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        check(head.startswith(b"HTTP/1.1 200"), "stream status: %r" % head[:40])
        junk = b"x" * 65536
        try:
            for _ in range(64):
                s.sendall(junk)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            return True
        # Everything was written: was it read and kept, or is the
        # connection closing?
        s.settimeout(5)
        deadline = time.monotonic() + 5
        try:
            while time.monotonic() < deadline:
                if not s.recv(65536):
                    return True
        except (ConnectionResetError, ssl.SSLError):
            return True
        except socket.timeout:
            return False
        return False
    finally:
        s.close()


def test_one_input_policy_for_plain_and_tls_clients(t):
    d = os.path.join(t.dir, "pki")
    os.makedirs(d)
    ca = pki.ca(d)
    cert = pki.leaf(d, ca, "localhost", sans=["DNS:localhost", "IP:127.0.0.1"])
    ctx = ssl.create_default_context(cafile=ca[0])
    mock = t.mock()
    limits = {"max_body_bytes": "1KiB", "max_header_bytes": "1KiB"}
    plain = t.gateway(mock=mock, **limits)
    tls = t.gateway(mock=mock, tls=ctx, **limits,
                    extra_yaml="tls:\n  cert: %s\n  key: %s" % (json.dumps(cert[0]),
                                                             json.dumps(cert[1])))
    check(_flood_while_streaming(plain.port), "plain: a client sending 4 MiB while its "
          "response streams was not closed")
    check(_flood_while_streaming(tls.port, ctx), "TLS: a client sending 4 MiB while its "
          "response streams was not closed")
    plain.assert_alive()
    tls.assert_alive()
