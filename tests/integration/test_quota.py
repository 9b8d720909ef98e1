# SPDX-License-Identifier: Apache-2.0
"""
Quotas: request and token limits per tenant, per API key and per tenant and
model, reserved before a request is sent and reconciled when it ends; the
OpenAI x-ratelimit-* headers; global limits across two sluiced sharing a
real redis-server, and what happens when that Redis goes away.
"""
import json
import re
import threading
import time

from run import (RawConn, assert_openai_error, build_request, chat_body, check, eq,
                 http_request, post, wait_until)
from test_auth import bearer, create_key, keys_file, tenants_yaml

CHAT = "/v1/chat/completions"
DURATION = re.compile(r"^(\d+ms|\d+(\.\d{3})?s|\d+m\d+s)$")


def avoid_minute_edge(need_s=20):
    """Per-minute windows are aligned to the clock: start a test that needs
    need_s seconds inside one window."""
    left = 60 - time.time() % 60
    if left < need_s:
        time.sleep(left + 0.2)


def quota_gateway(t, mock, limits, key_limits=None, model_limits=None, extra="", **opts):
    spec = {"name": "acme", "keys_file": keys_file(t, "acme"), "limits": limits}
    if key_limits:
        spec["key_limits"] = key_limits
    if model_limits:
        spec["model_limits"] = model_limits
    yaml = tenants_yaml(t, spec) + "\nauth:\n  anonymous: deny\n" + extra
    return t.gateway(mock=mock, extra_yaml=yaml, **opts)


def ready_key(gw, tenant="acme"):
    key = create_key(gw, tenant)
    wait_until(lambda: http_request(gw.port, "GET", "/v1/models", headers=bearer(key))[0] == 200,
               5, "the new key to be accepted")
    return key


def test_request_limit_headers_move_and_429(t):
    mock = t.mock()
    gw = quota_gateway(t, mock, {"requests_per_minute": 5, "tokens_per_minute": 100000})
    key = ready_key(gw)
    avoid_minute_edge()
    seen = []
    for i in range(5):
        body = chat_body(stream=(i == 2), max_tokens=20)
        st, h, data = post(gw.port, CHAT, body, bearer(key))
        eq(st, 200, "request %d (body %r)" % (i, data[:200]))
        eq(h.get("x-ratelimit-limit-requests"), "5", "limit-requests on response %d" % i)
        seen.append(int(h["x-ratelimit-remaining-requests"]))
        check(DURATION.match(h.get("x-ratelimit-reset-requests", "")),
              "reset-requests is a duration: %r" % h.get("x-ratelimit-reset-requests"))
        eq(h.get("x-ratelimit-limit-tokens"), "100000", "limit-tokens")
        check(int(h["x-ratelimit-remaining-tokens"]) < 100000, "remaining tokens moved")
        check(DURATION.match(h.get("x-ratelimit-reset-tokens", "")), "reset-tokens duration")
    eq(seen, [4, 3, 2, 1, 0], "remaining-requests after each request")
    st, h, data = post(gw.port, CHAT, chat_body(), bearer(key))
    assert_openai_error(st, data, 429, "rate_limit_error", "rate_limit_exceeded", "6th request")
    eq(h.get("x-ratelimit-remaining-requests"), "0", "remaining on the 429")
    retry = int(h.get("retry-after", "0"))
    check(1 <= retry <= 60, "Retry-After within the minute: %r" % h.get("retry-after"))
    check("requests_per_minute" in json.loads(data)["error"]["message"],
          "the 429 says which limit")


def test_tokens_reserved_then_reconciled(t):
    mock = t.mock()
    gw = quota_gateway(t, mock, {"tokens_per_minute": 5000})
    key = ready_key(gw)
    avoid_minute_edge()
    # max_tokens 4000 reserves most of the minute; the mock uses far less.
    st, h, _ = post(gw.port, CHAT, chat_body(max_tokens=4000), bearer(key))
    eq(st, 200, "first request")
    during = int(h["x-ratelimit-remaining-tokens"])
    check(during < 1000, "the reservation counts while the request runs (%d left)" % during)
    chats = wait_until(lambda: [r for r in gw.access_log() if r["path"] == CHAT], 3,
                       "the access log line of the first request")
    usage = chats[-1]
    used = usage["tokens_in"] + usage["tokens_out"]
    st, h, _ = post(gw.port, CHAT, chat_body(max_tokens=10), bearer(key))
    eq(st, 200, "second request fits once the first was reconciled")
    after = int(h["x-ratelimit-remaining-tokens"])
    check(after > 5000 - used - 200, "remaining after reconcile: %d (used %d)" % (after, used))
    # A request that can never fit is told so rather than asked to retry.
    st, h, data = post(gw.port, CHAT, chat_body(max_tokens=100000), bearer(key))
    assert_openai_error(st, data, 429, None, "request_too_large", "reservation above the limit")


def test_fifty_concurrent_streams_never_overspend_the_budget(t):
    mock = t.mock()
    body = chat_body("count to forty", stream=True, max_tokens=40)
    reservation = (len(json.dumps(body)) + 3) // 4 + 40
    budget = 10 * reservation
    gw = quota_gateway(t, mock, {"tokens_per_day": budget})
    key = ready_key(gw)
    results = []
    lock = threading.Lock()

    def one():
        c = RawConn(gw.port, timeout=30)
        try:
            c.send(build_request("POST", CHAT, body, dict(bearer(key), **{"x-mock-tps": "40"})))
            r = c.read_response(timeout=30)
            with lock:
                results.append(r.status)
        finally:
            c.close()
    threads = [threading.Thread(target=one) for _ in range(50)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    eq(len(results), 50, "every request answered")
    ok = results.count(200)
    check(0 < ok <= 12, "admitted %d of 50 against a budget of 10 reservations" % ok)
    eq(results.count(200) + results.count(429), 50, "only 200s and 429s: %r" % results)
    chats = wait_until(lambda: [r for r in gw.access_log() if r["path"] == CHAT][49:] and
                       [r for r in gw.access_log() if r["path"] == CHAT], 5,
                       "access log lines of the 50 requests")
    eq(len(chats), 50, "access log lines of the 50 requests")
    used = sum((r.get("tokens_in") or 0) + (r.get("tokens_out") or 0)
               for r in chats if r["status"] == 200)
    check(used <= budget + reservation,
          "used %d tokens against a budget of %d (+1 reservation %d)" % (used, budget, reservation))
    refusals = [r for r in chats if r["status"] == 429]
    check(refusals and all(r.get("error") == "insufficient_quota" for r in refusals),
          "refusals say insufficient_quota: %r" % {r.get("error") for r in refusals})


def test_concurrent_key_and_model_limits(t):
    mock = t.mock()
    gw = quota_gateway(t, mock, {"concurrent": 2},
                       key_limits={"requests_per_minute": 3},
                       model_limits=[{"model": "mock-large", "requests_per_minute": 1}])
    k1, k2 = ready_key(gw), ready_key(gw)
    avoid_minute_edge()
    # Two slow streams hold both concurrency slots.
    conns = []
    for k in (k1, k2):
        c = RawConn(gw.port, timeout=20)
        c.send(build_request("POST", CHAT, chat_body(stream=True, max_tokens=60),
                             dict(bearer(k), **{"x-mock-tps": "20"})))
        conns.append(c)
    for c in conns:
        eq(c.read_head().status, 200, "slow stream admitted")
    st, _, data = post(gw.port, CHAT, chat_body(), bearer(k1))
    assert_openai_error(st, data, 429, None, "rate_limit_exceeded", "third concurrent request")
    check("concurrent" in json.loads(data)["error"]["message"], "the 429 names concurrency")
    # Clients that hang up mid-stream give their slots back.
    for c in conns:
        c.close()
    wait_until(lambda: 'sluice_tenant_requests_in_flight{tenant="acme"} 0' in gw.metrics(),
               5, "the aborted streams to leave the in-flight count")
    # Per key: k1 has used 1 of its 3 requests this minute (the refusal did not count).
    eq(post(gw.port, CHAT, chat_body(), bearer(k1))[0], 200, "k1's second request")
    eq(post(gw.port, CHAT, chat_body(), bearer(k1))[0], 200, "k1's third request")
    st, _, data = post(gw.port, CHAT, chat_body(), bearer(k1))
    assert_openai_error(st, data, 429, None, "rate_limit_exceeded", "k1 over its own limit")
    eq(post(gw.port, CHAT, chat_body(), bearer(k2))[0], 200, "k2 has its own limit")
    # Per tenant and model.
    eq(post(gw.port, CHAT, chat_body(model="mock-large"), bearer(k2))[0], 200, "mock-large once")
    st, _, data = post(gw.port, CHAT, chat_body(model="mock-large"), bearer(k2))
    assert_openai_error(st, data, 429, None, "rate_limit_exceeded", "mock-large twice")


def _global_gateway(t, mock, redis, on_error="open", rpm=10):
    extra = "\nquota:\n  redis: {url: %s, on_error: %s, timeout: 100ms}\n" % (
        json.dumps(redis.url), on_error)
    return quota_gateway(t, mock, {"requests_per_minute": rpm}, extra=extra)


def test_two_gateways_share_one_global_limit(t):
    redis = t.redis()
    mock = t.mock()
    a = _global_gateway(t, mock, redis)
    b = _global_gateway(t, mock, redis)   # same keys file, same tenant
    key = ready_key(a)
    wait_until(lambda: http_request(b.port, "GET", "/v1/models", headers=bearer(key))[0] == 200,
               5, "b to accept the key")
    avoid_minute_edge()
    statuses = []
    for i in range(16):
        gw = a if i % 2 == 0 else b
        statuses.append(post(gw.port, CHAT, chat_body(), bearer(key))[0])
    eq(statuses.count(200), 10, "one global limit of 10 across two gateways: %r" % statuses)
    eq(statuses.count(429), 6, "the rest refused")
    keys = redis.command("KEYS", "sluice:*")
    check(any(":rpm:" in k for k in keys), "the global counters live in Redis: %r" % keys)


def test_redis_outage_fail_open_and_closed_then_recovery(t):
    redis = t.redis()
    mock = t.mock()
    gw_open = _global_gateway(t, mock, redis, "open", rpm=1000)
    gw_closed = _global_gateway(t, mock, redis, "closed", rpm=1000)
    key = ready_key(gw_open)
    wait_until(lambda: http_request(gw_closed.port, "GET", "/v1/models",
                                    headers=bearer(key))[0] == 200, 5, "closed gw key")
    eq(post(gw_open.port, CHAT, chat_body(), bearer(key))[0], 200, "open, redis up")
    eq(post(gw_closed.port, CHAT, chat_body(), bearer(key))[0], 200, "closed, redis up")
    port = redis.port
    redis.stop()
    # Leases taken before the outage were counted in Redis and are still
    # spent; once they run out the policy decides.
    for i in range(40):
        eq(post(gw_open.port, CHAT, chat_body(), bearer(key))[0], 200, "fail open admits (%d)" % i)
    for i in range(40):
        st, _, data = post(gw_closed.port, CHAT, chat_body(), bearer(key))
        if st != 200:
            break
    check(i < 39, "the closed gateway's lease ran out within 40 requests")
    assert_openai_error(st, data, 503, "server_error", "quota_unavailable", "fail closed")
    gw_open.wait_stderr(r"unreachable", 5, "the outage to be logged")
    # Requests during the outage do not each wait for Redis.
    t0 = time.monotonic()
    for _ in range(20):
        post(gw_open.port, CHAT, chat_body(), bearer(key))
    check(time.monotonic() - t0 < 5, "20 requests during the outage took %.1fs"
          % (time.monotonic() - t0))
    redis2 = t.redis(port=port)
    wait_until(lambda: post(gw_closed.port, CHAT, chat_body(), bearer(key))[0] == 200, 10,
               "the closed gateway to recover when Redis is back")
    gw_closed.wait_stderr(r"is back", 5, "the recovery to be logged")
    keys = redis2.command("KEYS", "sluice:*")
    check(keys, "counting resumed in the restarted Redis")


def test_reload_applies_new_limits_and_models(t):
    """SIGHUP: the next request is checked against the new limits and
    allowed models; usage counted so far is kept."""
    import signal
    mock = t.mock()
    gw = quota_gateway(t, mock, {"requests_per_minute": 2})
    key = ready_key(gw)
    avoid_minute_edge(20)
    eq([post(gw.port, CHAT, chat_body(), bearer(key))[0] for _ in range(3)], [200, 200, 429],
       "two requests a minute")
    text = gw.config_text.replace("{\"requests_per_minute\": 2}", "{\"requests_per_minute\": 4}")
    text = text.replace("    limits:", "    models: [\"mock-small\"]\n    limits:", 1)
    check(text != gw.config_text and "mock-small\"]\n    limits" in text, "config edited")
    with open(gw.config_path, "w") as f:
        f.write(text)
    gw.signal(signal.SIGHUP)
    gw.wait_stderr(r"reload: applied", 5, "the reload")
    st, h, _ = post(gw.port, CHAT, chat_body(), bearer(key))
    eq(st, 200, "a third request under the raised limit")
    eq(h.get("x-ratelimit-limit-requests"), "4", "the new limit in the headers")
    eq(h.get("x-ratelimit-remaining-requests"), "1", "usage kept across the reload")
    st, _, body = post(gw.port, CHAT, chat_body(model="mock-large"), bearer(key))
    assert_openai_error(st, body, 403, "permission_error", "model_not_allowed",
                        "a model the reloaded tenant may no longer use")
