# SPDX-License-Identifier: Apache-2.0
"""Keep-alive connections to backends: a request is sent once, and the pool
lets connections go before the backend would."""
import json
import time

from run import (RawConn, assert_openai_error, build_request, chat_body, check, eq,
                 post, wait_until)

CHAT = "/v1/chat/completions"


def _established_to(port):
    """Established TCP connections to 127.0.0.1:port (from /proc/net/tcp)."""
    n = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            rem, st = parts[2], parts[3]
            if st == "01" and rem == "0100007F:%04X" % port:
                n += 1
    return n


def test_reset_after_the_backend_read_the_request_is_not_resent(t):
    # One worker: the warmed connection is the one the next request takes.
    mock = t.mock()
    gw = t.gateway(mock=mock, workers=1)
    for body in (chat_body("reset me"), chat_body("reset me streaming", stream=True)):
        st, _, _ = post(gw.port, CHAT, chat_body("warm the pool"))
        eq(st, 200, "warm-up request")
        before = mock.stats()["requests"]
        st, _, resp = post(gw.port, CHAT, body, {"x-mock-fault": "reset"})
        assert_openai_error(st, resp, 502, "server_error", "upstream_reset",
                            "reset after the request was read")
        # mockllm counts a request once it has read it, then resets.
        eq(mock.stats()["requests"] - before, 1,
           "requests the backend received for one client call (stream=%s)" % body.get("stream"))
    st, _, _ = post(gw.port, CHAT, chat_body("still fine"))
    eq(st, 200, "a request after the resets")
    gw.assert_alive()


def test_pool_closes_idle_connections_after_idle_timeout(t):
    mock = t.mock()
    gw = t.gateway(backends=[{"name": "mock", "url": mock.url, "models": ["mock-small"],
                              "idle_timeout": "300ms"}], mock=mock, workers=1)
    for i in range(3):
        st, _, _ = post(gw.port, CHAT, chat_body("pooled %d" % i))
        eq(st, 200, "request %d" % i)
    check(_established_to(mock.port) >= 1, "a pooled connection to the backend after requests")
    # keepalive is 10s in the test harness: only idle_timeout closes it sooner.
    wait_until(lambda: _established_to(mock.port) == 0, 5,
               "the pooled connection closed after idle_timeout")
    st, _, _ = post(gw.port, CHAT, chat_body("after the pool emptied"))
    eq(st, 200, "a request after the pool emptied")
