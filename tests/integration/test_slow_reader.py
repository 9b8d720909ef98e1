# SPDX-License-Identifier: Apache-2.0
"""Slow readers: a client with a small receive buffer that reads in small
pieces with pauses keeps the gateway's sends in flight for a long time
while the backend goes on producing.  What it receives must be exactly
what the backend sent: every chunk well framed, every SSE event whole,
the payload byte for byte the backend's (fetched again straight from
mockllm, whose output is a function of the request)."""
import json
import os
import re
import socket
import ssl
import threading
import time

import pki
from run import RawConn, build_request, chat_body, check, eq, fail, post

STREAM_TOKENS = "60000"     # about 15 MB of events
BODY_TOKENS = "1000000"     # a non-streamed body of about 6.5 MB
PIECES = (1, 7, 100, 1000, 333, 4096, 2048, 61)
# Concurrent slow readers per round; vm-test/ktls.sh asks for fewer, as its
# emulated guest is much slower.
ROUNDS = int(os.environ.get("SLUICE_SLOW_READER_ROUNDS", "0")) or None


def _direct_stream(port, body, headers):
    """The backend's own stream for this request, de-chunked."""
    c = RawConn(port, timeout=120)
    try:
        c.send(build_request("POST", "/v1/chat/completions", body, headers))
        r = c.read_response()
        eq(r.status, 200, "direct stream status")
        check(r.complete, "direct stream did not end")
        return r.body
    finally:
        c.close()


def _slow_exchange(port, request, tls=None, rcvbuf=4096, seed=0, deadline_s=240):
    """Send request on a connection with a small receive buffer, read the
    whole response (Connection: close) in small pieces with pauses."""
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Before connect, so the window the gateway sees is small from the start.
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    raw.settimeout(30)
    raw.connect(("127.0.0.1", port))
    s = tls.wrap_socket(raw, server_hostname="localhost") if tls else raw
    try:
        s.sendall(request)
        out = bytearray()
        deadline = time.monotonic() + deadline_s
        i = seed
        while True:
            d = s.recv(PIECES[i % len(PIECES)])
            if not d:
                break
            out += d
            i += 1
            if i % 97 == 0:
                time.sleep(0.002)   # the reader stalls now and then
            if time.monotonic() > deadline:
                fail("slow read did not finish in %ds (%d bytes)" % (deadline_s, len(out)))
        return bytes(out)
    finally:
        s.close()


def _split_head(resp):
    i = resp.find(b"\r\n\r\n")
    check(i > 0, "no response head in %r" % resp[:200])
    lines = resp[:i].decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(lines[0].split(" ")[1]), headers, resp[i + 4:]


def _check_chunked_events(body, what):
    """De-chunk body, checking every chunk's framing, and that each chunk
    carries whole SSE events only (the gateway relays complete events) that
    are valid JSON or [DONE].  Returns the payload."""
    pos, payload, nchunks = 0, bytearray(), 0
    while True:
        eol = body.find(b"\r\n", pos)
        check(eol > pos, "%s: chunk %d: no size line at byte %d: %r"
              % (what, nchunks, pos, body[pos:pos + 40]))
        line = body[pos:eol]
        check(all(c in b"0123456789abcdef" for c in line) and len(line) <= 8,
              "%s: chunk %d: bad size line %r at byte %d" % (what, nchunks, line, pos))
        size = int(line, 16)
        pos = eol + 2
        if size == 0:
            eq(body[pos:], b"\r\n", "%s: after the last chunk" % what)
            break
        data = body[pos:pos + size]
        eq(len(data), size, "%s: chunk %d length" % (what, nchunks))
        eq(body[pos + size:pos + size + 2], b"\r\n", "%s: chunk %d end" % (what, nchunks))
        check(data.endswith(b"\n\n"), "%s: chunk %d does not end an event: %r"
              % (what, nchunks, data[-60:]))
        for ev in data[:-2].split(b"\n\n"):
            check(ev.startswith(b"data: "), "%s: chunk %d: event %r" % (what, nchunks, ev[:80]))
            d = ev[6:]
            if d != b"[DONE]":
                try:
                    json.loads(d)
                except ValueError:
                    fail("%s: chunk %d: event is not JSON: %r" % (what, nchunks, d[:200]))
        payload += data
        pos += size + 2
        nchunks += 1
    return bytes(payload)


def _stream_request(prompt, tokens=STREAM_TOKENS):
    body = chat_body(prompt, stream=True, stream_options={"include_usage": True})
    return body, {"x-mock-tokens": tokens}


def _slow_streams(port, mock, tls, rounds, what):
    """Several slow readers at once through ~15 MB streams; each compared
    with the backend's own stream for the same request."""
    rounds = ROUNDS or rounds
    results, errors = {}, []
    prompts = ["slow reader %s round %d" % (what, i) for i in range(rounds)]

    def one(i):
        try:
            body, h = _stream_request(prompts[i])
            h = dict(h, Connection="close")
            results[i] = _slow_exchange(port, build_request("POST", "/v1/chat/completions",
                                                            body, h), tls=tls, seed=i * 3)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append("round %d: %s: %s" % (i, type(e).__name__, e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(rounds)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    check(not errors, "%s: %s" % (what, "; ".join(errors)))
    for i in range(rounds):
        st, h, rest = _split_head(results[i])
        eq(st, 200, "%s round %d status" % (what, i))
        eq(h.get("transfer-encoding"), "chunked", "%s round %d framing" % (what, i))
        got = _check_chunked_events(rest, "%s round %d" % (what, i))
        body, hh = _stream_request(prompts[i])
        want = _direct_stream(mock.port, body, hh)
        check(len(want) > 10_000_000, "the backend's stream is %d bytes" % len(want))
        if got != want:
            n = next((k for k in range(min(len(got), len(want))) if got[k] != want[k]),
                     min(len(got), len(want)))
            fail("%s round %d: stream differs from the backend's at byte %d of %d/%d: "
                 "got %r want %r" % (what, i, n, len(got), len(want), got[n:n + 60],
                                     want[n:n + 60]))


def _slow_bodies(port, mock, tls, rounds, what):
    """Large non-streamed bodies, read slowly, byte for byte the backend's."""
    for i in range(ROUNDS or rounds):
        body = chat_body("slow body %s %d" % (what, i))
        h = {"x-mock-tokens": BODY_TOKENS, "Connection": "close"}
        resp = _slow_exchange(port, build_request("POST", "/v1/chat/completions", body, h),
                              tls=tls, seed=i)
        st, hh, rest = _split_head(resp)
        eq(st, 200, "%s body %d status" % (what, i))
        d_st, _, want = post(mock.port, "/v1/chat/completions", body,
                             {"x-mock-tokens": BODY_TOKENS}, timeout=120)
        eq(d_st, 200, "direct status")
        check(len(want) > 5_000_000, "the backend's body is %d bytes" % len(want))
        eq(int(hh.get("content-length", -1)), len(want), "%s body %d content-length" % (what, i))
        if rest != want:
            fail("%s body %d: differs from the backend's (%d vs %d bytes)"
                 % (what, i, len(rest), len(want)))


def test_slow_reader_plain_streams_byte_exact(t):
    mock = t.mock()
    gw = t.gateway(mock=mock, workers=1, upstream_idle="60s")
    _slow_streams(gw.port, mock, None, 4, "plain")
    _slow_streams(gw.port, mock, None, 4, "plain again")
    gw.assert_alive()


def test_slow_reader_plain_large_bodies_byte_exact(t):
    mock = t.mock()
    gw = t.gateway(mock=mock, workers=1, upstream_idle="60s")
    _slow_bodies(gw.port, mock, None, 3, "plain")
    gw.assert_alive()


def _tls_gateway(t):
    d = os.path.join(t.dir, "pki")
    os.makedirs(d)
    ca = pki.ca(d)
    cert = pki.leaf(d, ca, "localhost", sans=["DNS:localhost", "IP:127.0.0.1"])
    ctx = ssl.create_default_context(cafile=ca[0])
    yaml = "tls:\n  cert: %s\n  key: %s" % (json.dumps(cert[0]), json.dumps(cert[1]))
    mock = t.mock()
    gw = t.gateway(mock=mock, workers=1, upstream_idle="60s", extra_yaml=yaml, tls=ctx)
    return mock, gw, ctx


def _check_tls_mode(gw, rounds):
    """The host has no tls module: these tests run userspace TLS there.
    vm-test/ktls.sh runs them in a guest that has it, with
    SLUICE_EXPECT_KTLS=1: then the kernel must have carried the sends."""
    if not os.environ.get("SLUICE_EXPECT_KTLS"):
        return
    modes = {m.group(1): int(m.group(2)) for m in re.finditer(
        r'^sluice_tls_connections_total\{mode="(\w+)"\} (\d+)$', gw.metrics(), re.M)}
    check(modes.get("ktls", 0) + modes.get("ktls_tx", 0) >= rounds,
          "connections with kernel TLS sends: %r, want %d" % (modes, rounds))


def test_slow_reader_tls_streams_byte_exact(t):
    mock, gw, ctx = _tls_gateway(t)
    _slow_streams(gw.port, mock, ctx, 3, "tls")
    _slow_streams(gw.port, mock, ctx, 3, "tls again")
    _check_tls_mode(gw, 2 * (ROUNDS or 3))
    gw.assert_alive()


def test_slow_reader_tls_large_bodies_byte_exact(t):
    mock, gw, ctx = _tls_gateway(t)
    _slow_bodies(gw.port, mock, ctx, 2, "tls")
    _check_tls_mode(gw, ROUNDS or 2)
    gw.assert_alive()
