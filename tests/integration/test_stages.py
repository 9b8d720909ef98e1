# SPDX-License-Identifier: Apache-2.0
"""The stage seam (proxy/stage.h), proved with the debug test stage:
a stage that waits and resumes, one whose wait passes its deadline, a
client that leaves while a stage waits, and SSE events dropped, replaced
and held back."""
import json
import time

from run import (RawConn, build_request, chat_body, check, eq, http_request, post,
                 assert_openai_error, sse_events, sse_data, stream_direct, wait_until)

CHAT = "/v1/chat/completions"
HDR = "x-sluice-test-stage"
# The client asks for usage itself: the gateway then relays every event,
# so the direct stream is the reference byte for byte.
STREAM = chat_body("tell me a story", stream=True, stream_options={"include_usage": True})


def _answered(conn):
    """True when the gateway has sent this connection something (no wait)."""
    import select
    return bool(select.select([conn.sock], [], [], 0)[0])


def _gw(t, mock, stage="300ms", **kw):
    return t.gateway(mock=mock, workers=1, stage=stage,
                     extra_yaml="debug:\n  test_stage: true\n", **kw)


def test_stage_wait_does_not_block_the_worker(t):
    mock = t.mock()
    gw = _gw(t, mock)
    # One worker: a request parked in a stage must not hold up the next.
    waiting = RawConn(gw.port, timeout=10)
    waiting.send(build_request("POST", CHAT, chat_body(), {HDR: "wait=250"}))
    st, _, _ = post(gw.port, CHAT, chat_body())
    eq(st, 200, "a request behind a waiting one")
    check(not _answered(waiting), "the waiting request is not answered yet")
    r = waiting.read_response()
    eq(r.status, 200, "the waiting request, resumed")
    check(json.loads(r.body)["choices"], "its answer is the backend's")
    waiting.close()


def test_stage_wait_past_deadline_is_504(t):
    mock = t.mock()
    gw = _gw(t, mock)
    c = RawConn(gw.port, timeout=10)
    c.send(build_request("POST", CHAT, chat_body(), {HDR: "wait=forever"}))
    r = c.read_response()
    assert_openai_error(r.status, r.body, 504, "server_error", "stage_timeout",
                        "a stage that never resumes")
    # The connection is still good for the next request.
    c.send(build_request("POST", CHAT, chat_body()))
    eq(c.read_response().status, 200, "next request on the same connection")
    c.close()
    wait_until(lambda: any(l.get("error") == "stage_timeout" for l in gw.access_log()),
               5, "the access log to name stage_timeout")


def test_client_gone_while_stage_waits(t):
    mock = t.mock()
    gw = _gw(t, mock, stage="5s")
    c = RawConn(gw.port, timeout=10)
    c.send(build_request("POST", CHAT, chat_body(), {HDR: "wait=forever"}))
    c.close()
    wait_until(lambda: any(l.get("status") == 499 for l in gw.access_log()),
               5, "the abandoned request to be logged as 499")
    eq(post(gw.port, CHAT, chat_body())[0], 200, "the gateway still serves")


def test_test_stage_is_off_unless_configured(t):
    mock = t.mock()
    gw = t.gateway(mock=mock, stage="300ms")
    st, _, _ = post(gw.port, CHAT, chat_body(), {HDR: "wait=forever"})
    eq(st, 200, "the header does nothing without debug.test_stage")


def _events(port, directive, tokens=6):
    h = {"x-mock-tokens": str(tokens)}
    if directive:
        h[HDR] = directive
    return sse_events(stream_direct(port, STREAM, h).body)


def test_sse_drop_replace_hold(t):
    mock = t.mock()
    gw = _gw(t, mock)
    ref = _events(mock.port, None)
    check(len(ref) >= 6, "the reference stream has events: %r" % ref)
    eq(_events(gw.port, None), ref, "no directive: every event as sent")
    eq(_events(gw.port, "drop=2"), ref[:1] + ref[2:], "event 2 dropped")
    got = _events(gw.port, "replace=3")
    eq(got[:2] + got[3:], ref[:2] + ref[3:], "only event 3 changes")
    eq(json.loads(sse_data(got[2])), {"sluice_test": "replaced"}, "event 3 replaced")
    eq(_events(gw.port, "hold=2"), ref, "a held event goes out before the next one")
    eq(_events(gw.port, "holdall"), ref, "events held to the end all go out, in order")
    # Held bytes are really kept back: dropping what is held at event 4
    # removes events 1-3, which therefore never reached the client.
    eq(_events(gw.port, "holdall,drophold=4"), ref[3:], "held events dropped")
    eq(_events(gw.port, "hold=2,drop=3"), ref[:1] + ref[1:2] + ref[3:],
       "a held event waits through a dropped one")


def test_sse_holdall_sends_one_chunk_at_the_end(t):
    mock = t.mock()
    gw = _gw(t, mock)
    # A slow stream: without holding, events arrive in many chunks.
    h = {"x-mock-tokens": "5", "x-mock-tps": "50", HDR: "holdall"}
    c = RawConn(gw.port, timeout=10)
    c.send(build_request("POST", CHAT, STREAM, h))
    r = c.read_response()
    c.close()
    eq(r.status, 200, "status")
    eq(len(r.chunks), 1, "everything held comes out at once, at the end")
    eq(sse_data(sse_events(r.chunks[0][1])[-1]), "[DONE]", "the one chunk ends the stream")


# ---- a stalled Redis (global quotas) ----

def _stalled_redis_gateway(t, redis, on_error, redis_timeout, stage):
    from test_quota import quota_gateway
    extra = "\nquota:\n  redis: {url: %s, on_error: %s, timeout: %s}\n" % (
        json.dumps(redis.url), on_error, redis_timeout)
    # Large limits: one Redis call leases enough for every later request
    # of the same scope, so only a scope never seen needs Redis.
    return quota_gateway(t, t.mock(), {"requests_per_minute": 100000},
                         key_limits={"requests_per_minute": 100000},
                         extra=extra, workers=1, stage=stage)


def _stall_case(t, on_error, redis_timeout, stage, want_status, want_code):
    import signal
    from test_auth import bearer
    from test_quota import ready_key
    redis = t.redis()
    gw = _stalled_redis_gateway(t, redis, on_error, redis_timeout, stage)
    warm, cold = ready_key(gw), ready_key(gw)
    eq(post(gw.port, CHAT, chat_body(), bearer(warm))[0], 200, "warm key, Redis up")
    redis.p.send_signal(signal.SIGSTOP)
    try:
        # The cold key's scope has no lease: its admission needs Redis,
        # which does not answer.  It waits off the worker...
        waiting = RawConn(gw.port, timeout=10)
        waiting.send(build_request("POST", CHAT, chat_body(), bearer(cold)))
        # ...while the warm key, on the same (only) worker, is served.
        for i in range(5):
            eq(post(gw.port, CHAT, chat_body(), bearer(warm))[0], 200,
               "warm key %d while Redis is stalled" % i)
        check(not _answered(waiting), "the cold key's request still waits")
        r = waiting.read_response()
        waiting.close()
        if want_code:
            assert_openai_error(r.status, r.body, want_status, None, want_code,
                                "the cold key once its wait ends")
        else:
            eq(r.status, want_status, "the cold key once its wait ends")
    finally:
        redis.p.send_signal(signal.SIGCONT)


def test_stalled_redis_fails_open_without_blocking_the_worker(t):
    _stall_case(t, "open", "1s", "5s", 200, None)


def test_stalled_redis_fails_closed_without_blocking_the_worker(t):
    _stall_case(t, "closed", "1s", "5s", 503, "quota_unavailable")


def test_stalled_redis_past_the_stage_deadline_is_504(t):
    _stall_case(t, "closed", "3s", "300ms", 504, "stage_timeout")


# ---- the snapshot of one exchange ----

def test_request_in_flight_keeps_its_snapshot_across_reload(t):
    """A request that began before a reload is admitted by the snapshot it
    began with (here: a model the reload takes away); the next one by the
    new snapshot."""
    import signal
    from test_auth import bearer
    from test_quota import quota_gateway, ready_key
    mock = t.mock()
    gw = quota_gateway(t, mock, {"requests_per_minute": 1000}, workers=1, stage="5s",
                       extra="debug:\n  test_stage: true\n")
    key = ready_key(gw)
    # Waits in the test stage (before admission) across the reload.
    waiting = RawConn(gw.port, timeout=10)
    waiting.send(build_request("POST", CHAT, chat_body(model="mock-large"),
                               dict(bearer(key), **{HDR: "wait=1500"})))
    # The one worker takes connections in order: once a later connection is
    # answered, the waiting request has been read and is parked in the stage
    # (under the sanitizers the reload could otherwise overtake it).
    st, _, _ = http_request(gw.port, "GET", "/healthz")
    eq(st, 200, "healthz after the waiting request")
    time.sleep(0.2)
    text = gw.config_text.replace("    limits:", "    models: [\"mock-small\"]\n    limits:", 1)
    check(text != gw.config_text, "config edited")
    with open(gw.config_path, "w") as f:
        f.write(text)
    gw.signal(signal.SIGHUP)
    gw.wait_stderr(r"reload: applied", 5, "the reload")
    st, _, body = post(gw.port, CHAT, chat_body(model="mock-large"), bearer(key))
    assert_openai_error(st, body, 403, "permission_error", "model_not_allowed",
                        "a request begun after the reload")
    check(not _answered(waiting), "the first request still waits")
    r = waiting.read_response()
    waiting.close()
    eq(r.status, 200, "the request begun before the reload, on its own snapshot")


def test_drain_while_a_stage_waits(t):
    """timeouts.drain ends a request parked in a stage with a 503, and the
    stage's late resumption must not send it to the backend after that."""
    import signal
    mock = t.mock()
    gw = _gw(t, mock, stage="10s", drain="300ms")
    c = RawConn(gw.port, timeout=10)
    # Resumes after the drain deadline but before the process exits.
    c.send(build_request("POST", CHAT, chat_body(), {HDR: "wait=600"}))
    gw.signal(signal.SIGTERM)
    r = c.read_response()
    assert_openai_error(r.status, r.body, 503, "server_error", "drain_timeout",
                        "a request waiting in a stage at the drain deadline")
    c.close()
    eq(gw.wait(10), 0, "sluiced exits cleanly")
    eq(mock.stats()["requests"], 0, "the backend never got the drained request")
