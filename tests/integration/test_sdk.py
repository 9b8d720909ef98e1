# SPDX-License-Identifier: Apache-2.0
"""The official OpenAI Node SDK works against the gateway unchanged.

Missing node/npm or a failed `npm install` is a failure, not a skip."""
import json
import os
import subprocess
import time

import run
from run import chat_body, check, eq, fail, post

SDK_DIR = os.path.join(run.ROOT, "tests", "sdk")
MESSAGES = [{"role": "user", "content": "tell me about sluices and gates"}]


def _npm_install():
    return run.npm_install(SDK_DIR, "openai", timeout=180)


def test_openai_node_sdk(t):
    node = _npm_install()
    mock = t.mock()
    gw = t.gateway(mock=mock)
    try:
        p = subprocess.run([node, "sdk_check.mjs", "http://127.0.0.1:%d/v1" % gw.port],
                           cwd=SDK_DIR, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        fail("sdk_check.mjs did not finish within 60s")
    check(p.returncode == 0, "sdk_check.mjs exited %d:\n%s" % (p.returncode, p.stderr[-2000:]))
    try:
        res = json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        fail("sdk_check.mjs printed no JSON: %r / %r" % (p.stdout[-500:], p.stderr[-500:]))

    def ok(name):
        v = res.get(name)
        check(isinstance(v, dict) and "threw" not in v, "%s: %r" % (name, v))
        return v

    # what the backend says, straight
    st, _, d = post(mock.port, "/v1/chat/completions", chat_body(model="mock-small",
                                                                 prompt=MESSAGES[0]["content"]))
    eq(st, 200, "direct chat")
    direct = json.loads(d)
    content = direct["choices"][0]["message"]["content"]

    chat = ok("chat")
    eq(chat["content"], content, "SDK chat content")
    eq(chat["usage"], direct["usage"], "SDK chat usage")
    eq(chat["object"], "chat.completion", "SDK chat object")
    s = ok("chat_stream")
    eq(s["content"], content, "SDK stream content (deltas joined) vs non-stream content")
    eq(s["finish_reason"], "stop", "SDK stream finish_reason")
    eq(s["usage"], None, "usage in a stream the SDK did not ask usage for")
    su = ok("chat_stream_usage")
    eq(su["content"], content, "SDK stream (include_usage) content")
    check(su["usage"] and su["usage"]["completion_tokens"] == direct["usage"]["completion_tokens"],
          "SDK stream usage %r vs %r" % (su["usage"], direct["usage"]))

    st, _, d = post(mock.port, "/v1/embeddings", {"model": "mock-embed",
                                                  "input": ["one two", "three"]})
    emb = json.loads(d)
    e = ok("embeddings")
    eq(e["n"], 2, "SDK embeddings count")
    eq(e["dims"], [len(x["embedding"]) for x in emb["data"]], "SDK embeddings dims")
    for got, want in zip(e["first"], emb["data"][0]["embedding"][:4]):
        check(abs(got - want) < 1e-6, "SDK base64 embedding %r vs float %r"
              % (e["first"], emb["data"][0]["embedding"][:4]))
    ef = ok("embeddings_float")
    eq(ef["first"], emb["data"][0]["embedding"][:4], "SDK float embeddings")

    eq(sorted(ok("models")["ids"]), ["mock-embed", "mock-large", "mock-small"], "SDK models.list")

    for name, cls, status in (("err_400", "BadRequestError", 400),
                              ("err_404", "NotFoundError", 404),
                              ("err_429", "RateLimitError", 429),
                              ("err_429_default_headers", "RateLimitError", 429),
                              ("err_500", "InternalServerError", 500)):
        v = res.get(name) or {}
        eq(v.get("threw"), cls, "%s: SDK error class (%r)" % (name, v))
        eq(v.get("status"), status, "%s: SDK error status" % name)
        check(v.get("message"), "%s: no message" % name)
    eq(res["err_404"].get("code"), "model_not_found", "404 error code seen by the SDK")
    mid = res.get("err_stream_mid") or {}
    check(mid.get("threw"), "a stream the backend reset mid-way did not raise in the SDK: %r" % mid)
    check(mid.get("code") in ("upstream_reset", "upstream_protocol_error"),
          "error the SDK raised for a stream reset mid-way: %r" % mid)


def test_openai_node_sdk_with_a_sluice_key_and_rate_limit(t):
    """The SDK's own error classes and headers for the gateway's 401 and
    429 (maxRetries 0, so the 429 reaches the caller)."""
    from test_auth import create_key, keys_file, tenants_yaml
    from test_quota import avoid_minute_edge
    node = _npm_install()
    mock = t.mock()
    extra = tenants_yaml(t, {"name": "acme", "keys_file": keys_file(t, "acme"),
                             "limits": {"requests_per_minute": 3}})
    gw = t.gateway(mock=mock, extra_yaml=extra + "\nauth:\n  anonymous: deny\n")
    key = create_key(gw, "acme")
    run.wait_until(lambda: run.http_request(gw.port, "GET", "/healthz")[0] == 200, 5, "gw")
    avoid_minute_edge(10)
    time.sleep(1.2)    # the key table is reloaded within a second
    p = subprocess.run([node, "sdk_auth.mjs", "http://127.0.0.1:%d/v1" % gw.port, key],
                       cwd=SDK_DIR, capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, "sdk_auth.mjs exited %d:\n%s" % (p.returncode, p.stderr[-2000:]))
    res = json.loads(p.stdout.strip().splitlines()[-1])
    eq(res["remaining"], [2, 1, 0], "x-ratelimit-remaining-requests seen by the SDK")
    lim = res["limited"]
    eq((lim["threw"], lim["status"], lim["code"]), ("RateLimitError", 429, "rate_limit_exceeded"),
       "the 4th request in the SDK (%r)" % lim)
    check(lim["retry_after"] and int(lim["retry_after"]) >= 1, "Retry-After in the SDK: %r" % lim)
    bad = res["bad_key"]
    eq((bad["threw"], bad["status"], bad["code"]), ("AuthenticationError", 401, "invalid_api_key"),
       "a wrong key in the SDK (%r)" % bad)
