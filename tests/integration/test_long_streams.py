# SPDX-License-Identifier: Apache-2.0
"""Long streams: bounded per line and per event, not over their lifetime,
and scanned in time linear in their size however they arrive."""
import hashlib
import json
import os
import socket

from rawbackend import RawBackend
from run import (RawConn, build_request, chat_body, check, eq, fail, stream_direct,
                 sse_data, sse_events)

CHAT = "/v1/chat/completions"
MIB = 1 << 20
SSE_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")


def _read_all(port, request, timeout=120):
    """Send request (with Connection: close) and read until the gateway
    closes: the raw response.  bytearray, so 64 MiB cost no quadratic copy."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(request)
        out = bytearray()
        while True:
            d = s.recv(1 << 20)
            if not d:
                return bytes(out)
            out += d
    finally:
        s.close()


def _dechunk(body, what):
    """The payload of a chunked body, checking every size line; and whether
    the terminating chunk came."""
    pos, parts = 0, []
    while pos < len(body):
        eol = body.index(b"\r\n", pos)
        size = int(body[pos:eol], 16)
        pos = eol + 2
        if size == 0:
            eq(body[pos:], b"\r\n", "%s: after the last chunk" % what)
            return b"".join(parts), True
        parts.append(body[pos:pos + size])
        eq(body[pos + size:pos + size + 2], b"\r\n", "%s: chunk end" % what)
        pos += size + 2
    return b"".join(parts), False


def _split(resp):
    head, _, body = resp.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), head.decode("latin-1").lower(), body


def _cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of stat(5); [0] here is field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _event_backend(t, events, piece=64 * 1024):
    """A backend whose stream is the given events (bytes, each ending in its
    blank line), sent as chunks of piece bytes whatever the event bounds,
    then [DONE]."""
    def respond(sock, req):
        sock.sendall(SSE_HEAD)
        ev = events(req)
        for i in range(0, len(ev), piece):
            part = ev[i:i + piece]
            sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        tail = b"data: [DONE]\n\n"
        sock.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(tail), tail))
        return True
    return RawBackend(t, respond)


def _one_line_event(size):
    return b"data: " + b"x" * size + b"\n\n"


def _many_lines_event(size, line=1024):
    """The same number of bytes as _one_line_event(size), in short lines."""
    one = b"data: " + b"x" * (line - 7) + b"\n"
    return one * (size // line) + b"\n"


def _gateway_for(t, backend, **opts):
    return t.gateway(backends=[{"name": "raw", "url": backend.url, "models": ["mock-small"]}],
                     workers=1, upstream_idle="60s", **opts)


def test_stream_longer_than_64_mib_passes(t):
    mock = t.mock()
    gw = t.gateway(mock=mock, workers=1)
    body = chat_body("a long stream", stream=True, stream_options={"include_usage": True})
    h = {"x-mock-tokens": "300000"}
    resp = _read_all(gw.port, build_request("POST", CHAT, body, dict(h, Connection="close")))
    st, head, rest = _split(resp)
    eq(st, 200, "long stream status")
    got, complete = _dechunk(rest, "long stream")
    check(complete, "the long stream ended with its terminating chunk")
    check(len(got) > 64 * MIB, "the stream is %d bytes, want more than 64 MiB" % len(got))
    check(got.endswith(b"data: [DONE]\n\n"), "the stream ends with [DONE]: %r" % got[-80:])
    want = stream_direct(mock.port, body, h).body
    eq(hashlib.sha256(got).hexdigest(), hashlib.sha256(want).hexdigest(),
       "the stream through the gateway (%d bytes) against the backend's (%d bytes)"
       % (len(got), len(want)))
    gw.assert_alive()


def test_stream_lifetime_cap_is_an_option(t):
    mock = t.mock()
    gw = t.gateway(mock=mock, workers=1, max_stream_bytes="1MiB")
    body = chat_body("capped", stream=True)
    c = RawConn(gw.port)
    try:
        c.send(build_request("POST", CHAT, body, {"x-mock-tokens": "60000"}))
        r = c.read_response(timeout=30)
    finally:
        c.close()
    eq(r.status, 200, "capped stream status")
    check(r.complete, "the capped stream ended with its terminating chunk")
    check(len(r.body) <= MIB, "the capped stream carried %d bytes" % len(r.body))
    err = json.loads(sse_data(sse_events(r.body)[-1]))["error"]
    eq(err["code"], "upstream_protocol_error", "error code of the capped stream")
    check("max_stream_bytes" in err["message"], "message names the limit: %r" % err["message"])


def test_sse_line_over_the_limit_is_cut_with_an_error(t):
    backend = _event_backend(t, lambda req: _one_line_event(9 * MIB))
    gw = _gateway_for(t, backend)
    body = chat_body("a hostile line", stream=True)
    resp = _read_all(gw.port, build_request("POST", CHAT, body, {"Connection": "close"}))
    st, _, rest = _split(resp)
    eq(st, 200, "status of the stream")
    got, complete = _dechunk(rest, "stream with an over-long line")
    check(complete, "the stream ended with its terminating chunk")
    check(len(got) < MIB, "the gateway forwarded %d bytes of the over-long line" % len(got))
    err = json.loads(sse_data(sse_events(got)[-1]))["error"]
    eq(err["code"], "upstream_protocol_error", "error code")
    check("max_sse_line_bytes" in err["message"], "message names the limit: %r" % err["message"])
    gw.assert_alive()


def test_64_mib_line_costs_linear_cpu(t):
    """One line of 64 MiB costs about what 64 MiB in short lines cost: the
    scan is linear however the line is cut into reads.  (The quadratic
    splitter went back to the start of the line on every read: seconds of
    CPU for the long line, against a fraction of one for short lines.)"""
    line = _one_line_event(64 * MIB)
    lines = _many_lines_event(64 * MIB)
    backend = _event_backend(t, lambda req: line if b"one line" in req else lines)
    gw = _gateway_for(t, backend, max_sse_line_bytes="128MiB", max_sse_event_bytes="128MiB")
    cost = {}
    for what, event in (("short lines", lines), ("one line", line)):
        body = chat_body(what, stream=True)
        cpu0 = _cpu_seconds(gw.pid)
        resp = _read_all(gw.port, build_request("POST", CHAT, body, {"Connection": "close"}),
                         timeout=120)
        cost[what] = _cpu_seconds(gw.pid) - cpu0
        st, _, rest = _split(resp)
        eq(st, 200, "%s: status" % what)
        got, complete = _dechunk(rest, what)
        check(complete, "%s: the stream ended with its terminating chunk" % what)
        check(got == event + b"data: [DONE]\n\n", "%s: the stream relayed byte for byte" % what)
    # Both copy 64 MiB a few times through the kernel and the gateway;
    # generous for a noisy machine, far below what rescanning costs.
    bound = 2 * cost["short lines"] + 0.3
    check(cost["one line"] < bound,
          "one 64 MiB line cost %.2fs of the gateway's CPU, 64 MiB of short lines %.2fs "
          "(bound %.2fs)" % (cost["one line"], cost["short lines"], bound))
    gw.assert_alive()
