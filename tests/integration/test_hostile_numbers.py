# SPDX-License-Identifier: Apache-2.0
"""
Numbers a client or a backend controls, at the edges of their types: a
max_tokens that wraps the reservation when multiplied by n, a validly
signed JWT whose exp is INT64_MAX or 1e400, a backend reporting usage of
2^63 - 1 or -5 tokens.  Each is checked through the running daemon (under
ASan/UBSan with a -san build, where an overflow aborts it).
"""
import http.server
import json
import re
import socketserver
import threading

import jwtkit
from run import assert_openai_error, chat_body, check, eq, post, wait_until
from test_auth import bearer
from test_quota import quota_gateway, ready_key

CHAT = "/v1/chat/completions"
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1


def test_max_tokens_times_n_cannot_wrap_the_reservation(t):
    mock = t.mock()
    gw = quota_gateway(t, mock, {"tokens_per_minute": 2000})
    key = ready_key(gw)
    # 2^62 * 4 = 2^64: a reservation of 0 tokens if the product wraps.
    for what, extra in (("max_tokens 2^62, n 4", {"max_tokens": 2**62, "n": 4}),
                        ("max_completion_tokens 2^63-1, n 128",
                         {"max_completion_tokens": INT64_MAX, "n": 128}),
                        ("max_tokens 2^57, n 128", {"max_tokens": 2**57, "n": 128})):
        st, h, body = post(gw.port, CHAT, chat_body(**extra), bearer(key))
        assert_openai_error(st, body, 429, "rate_limit_error", "request_too_large", what)
        check("retry-after" not in h, "%s: no Retry-After for a request that never fits" % what)
    # Nothing was reserved by the refusals: a small request still fits.
    st, h, body = post(gw.port, CHAT, chat_body(max_tokens=10), bearer(key))
    eq(st, 200, "a small request after the refusals (body %r)" % body[:200])
    check(int(h["x-ratelimit-remaining-tokens"]) > 1900,
          "remaining tokens: %s" % h.get("x-ratelimit-remaining-tokens"))


def _signed(key, payload_text):
    """An HS256 token over a payload written by hand (json.dumps cannot
    write 1e400)."""
    head = json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode()
    signing = "%s.%s" % (jwtkit.b64url(head), jwtkit.b64url(payload_text.encode()))
    return signing + "." + jwtkit.b64url(key.sign(signing.encode()))


def _cache_counts(gw):
    m = gw.metrics()
    return tuple(int(re.search(r'sluice_auth_jwt_cache_total\{result="%s"\} (\d+)' % r, m).group(1))
                 for r in ("hit", "miss"))


def test_jwt_exp_at_int64_max_is_cached_not_overflowed(t):
    hs = jwtkit.HmacKey("hs-1")
    path = "%s/jwks.json" % t.dir
    with open(path, "w") as f:
        f.write(jwtkit.jwks(hs))
    mock = t.mock()
    extra = ("tenants:\n  - name: acme\nauth:\n  anonymous: deny\n  jwt:\n"
             "    jwks_file: %s\n    tenant_claim: org\n    leeway: 60\n" % json.dumps(path))
    # One worker: the cache is per worker.
    gw = t.gateway(mock=mock, extra_yaml=extra, workers=1)
    for exp in ("9223372036854775807", "1e400"):
        tok = _signed(hs, '{"org":"acme","sub":"u1","exp":%s}' % exp)
        hits, misses = _cache_counts(gw)
        for i in range(2):
            st, _, body = post(gw.port, CHAT, chat_body(), bearer(tok))
            eq(st, 200, "exp %s, request %d (body %r)" % (exp, i, body[:200]))
        eq(_cache_counts(gw), (hits + 1, misses + 1),
           "exp %s: verified once, then a cache hit" % exp)
    gw.assert_alive()


class FixedBackend:
    """An OpenAI-style backend that answers every chat request with the same
    body: here, usage numbers no real backend reports."""

    def __init__(self, body):
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length", "0")))
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.srv = S(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d/v1" % self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def _sample(metrics, series):
    m = re.search(r"^%s (\d+)$" % re.escape(series), metrics, re.M)
    check(m, "no sample %s in /metrics" % series)
    return int(m.group(1))


def test_backend_usage_out_of_range_saturates(t):
    # 2^63 - 1 is a valid JSON integer but no count; -5 is no count at all.
    body = ('{"id":"x","object":"chat.completion","model":"mock-small","choices":[{"index":0,'
            '"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],'
            '"usage":{"prompt_tokens":%d,"completion_tokens":-5,"total_tokens":%d}}'
            % (INT64_MAX, INT64_MAX)).encode()
    be = FixedBackend(body)
    t.on_cleanup(be.close)
    gw = t.gateway(backends=[{"name": "fixed", "url": be.url, "models": ["mock-small"]}],
                   extra_yaml="tenants:\n  - name: acme\nauth:\n  anonymous: acme\n")
    for i in range(3):
        st, _, data = post(gw.port, CHAT, chat_body())
        eq(st, 200, "request %d (body %r)" % (i, data[:200]))
        eq(data, body, "the backend's body is relayed as it is")
    lines = gw.wait_access_log(3, path=CHAT)
    chats = [r for r in lines if r["path"] == CHAT]
    eq([(r["tokens_in"], r["tokens_out"]) for r in chats], [(INT64_MAX, None)] * 3,
       "access log: the count as reported, -5 as not reported")
    # Three times 2^63 - 1 does not fit 64 bits: the totals stop at the top
    # instead of wrapping back to 2^63 - 3.
    m = gw.metrics()
    eq(_sample(m, 'sluice_tokens_total{model="mock-small",direction="input"}'), UINT64_MAX,
       "sluice_tokens_total input")
    check('direction="output"' not in re.sub(r"sluice_tenant_.*", "", m),
          "no output tokens counted from -5")
    wait_until(lambda: _sample(gw.metrics(), 'sluice_tenant_requests_total{tenant="acme"}') == 3,
               3, "the tenant's three requests to be counted")
    m = gw.metrics()
    eq(_sample(m, 'sluice_tenant_tokens_total{tenant="acme",direction="input"}'), UINT64_MAX,
       "sluice_tenant_tokens_total input")
    eq(_sample(m, 'sluice_tenant_tokens_total{tenant="acme",direction="output"}'), 0,
       "sluice_tenant_tokens_total output")
    gw.assert_alive()
