# SPDX-License-Identifier: Apache-2.0
"""
Identity: API keys written by sluicectl and picked up without a restart,
JWTs (RS256, ES256, HS256) against a JWKS file or URL, the anonymous
policy, allowed models, and the OpenAI-style 401/403 bodies.
"""
import http.server
import json
import os
import re
import socketserver
import subprocess
import threading
import time

import jwtkit
import run
from run import (assert_openai_error, chat_body, check, eq, fail, http_request, post,
                 wait_until)

CHAT = "/v1/chat/completions"


def sluicectl(*args, check_rc=True):
    p = subprocess.run([os.path.join(run.BUILD, "sluicectl")] + list(args),
                       capture_output=True, text=True, timeout=20)
    if check_rc and p.returncode != 0:
        fail("sluicectl %s exited %d: %s" % (" ".join(args), p.returncode, p.stderr))
    return p


def bearer(key):
    return {"Authorization": "Bearer %s" % key}


def tenants_yaml(t, *tenants):
    """tenants: entries (dicts) with keys_file defaulting into the test dir."""
    lines = ["tenants:"]
    for spec in tenants:
        lines.append("  - name: %s" % spec["name"])
        for k, v in spec.items():
            if k == "name":
                continue
            lines.append("    %s: %s" % (k, json.dumps(v)))
    return "\n".join(lines)


def keys_file(t, tenant):
    return os.path.join(t.dir, "keys", tenant)


def create_key(gw, tenant, label=None):
    args = ["key", "create", tenant, "-c", gw.config_path]
    if label:
        args += ["--label", label]
    p = sluicectl(*args)
    key = p.stdout.strip().splitlines()[-1].strip()
    check(key.startswith("sk-sluice-"), "sluicectl key create printed a key: %r" % p.stdout)
    return key


def test_api_keys_created_and_revoked_without_restart(t):
    mock = t.mock()
    extra = tenants_yaml(t, {"name": "acme", "keys_file": keys_file(t, "acme")},
                         {"name": "beta", "keys_file": keys_file(t, "beta")})
    gw = t.gateway(mock=mock, extra_yaml=extra + "\nauth:\n  anonymous: deny\n")
    st, hdrs, body = post(gw.port, CHAT, chat_body())
    assert_openai_error(st, body, 401, "invalid_request_error", "missing_api_key", "no key")
    st, _, body = post(gw.port, CHAT, chat_body(), bearer("sk-not-ours"))
    assert_openai_error(st, body, 401, "invalid_request_error", "invalid_api_key", "foreign key")
    check(b"sk-not-ours" not in body, "the refusal does not echo the key")

    # A key created while the gateway runs works without a restart.
    key = create_key(gw, "acme", "ci")
    with open(keys_file(t, "acme")) as f:
        text = f.read()
    check(key not in text and key.split("-")[2] in text,
          "the keys file holds the key id and a hash, never the key")
    eq(oct(os.stat(keys_file(t, "acme")).st_mode & 0o777), "0o600", "keys file mode")

    def accepted():
        return post(gw.port, CHAT, chat_body(), bearer(key))[0] == 200
    wait_until(accepted, 5, "the new key to be accepted")
    # A wrong secret with a real id is refused.
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    st, _, body = post(gw.port, CHAT, chat_body(), bearer(forged))
    assert_openai_error(st, body, 401, None, "invalid_api_key", "forged secret")
    # Azure- and Anthropic-style headers carry the key too.
    st, _, _ = post(gw.port, CHAT, chat_body(), {"api-key": key})
    eq(st, 200, "key in api-key header")
    st, _, _ = post(gw.port, CHAT, chat_body(), {"x-api-key": key})
    eq(st, 200, "key in x-api-key header")
    # The backend never sees the client's key.
    # The access log is written after the response: wait for the last line.
    wait_until(lambda: (gw.access_log() or [{}])[-1].get("key_id") == key.split("-")[2], 3,
               "the access log line of the last request")
    last = gw.access_log()[-1]
    eq((last["tenant"], last["auth"]), ("acme", "api_key"), "access log tenant and auth")

    beta = create_key(gw, "beta")
    wait_until(lambda: post(gw.port, CHAT, chat_body(), bearer(beta))[0] == 200, 5,
               "beta's key to be accepted")
    wait_until(lambda: gw.access_log()[-1].get("tenant") == "beta", 3,
               "the access log to name beta for beta's key")

    # Revoked: refused within a couple of seconds, the other keys still work.
    sluicectl("key", "revoke", "acme", key, "-c", gw.config_path)
    wait_until(lambda: post(gw.port, CHAT, chat_body(), bearer(key))[0] == 401, 5,
               "the revoked key to be refused")
    eq(post(gw.port, CHAT, chat_body(), bearer(beta))[0], 200, "beta's key after the revoke")
    listed = sluicectl("key", "list", "acme", "-c", gw.config_path).stdout
    check(key.split("-")[2] not in listed, "key list no longer shows the revoked id")


def test_anonymous_policies_and_unauthenticated_routes(t):
    mock = t.mock()
    extra = tenants_yaml(t, {"name": "guest"}) + "\nauth:\n  anonymous: guest\n"
    gw = t.gateway(mock=mock, extra_yaml=extra)
    eq(post(gw.port, CHAT, chat_body())[0], 200, "anonymous counted as guest")
    chats = wait_until(lambda: [r for r in gw.access_log() if r["path"] == CHAT], 3,
                       "the access log line of the request")
    eq(chats[-1]["tenant"], "guest", "tenant of an anonymous request")
    st, _, body = post(gw.port, CHAT, chat_body(), bearer("sk-sluice-000000000000-nope"))
    assert_openai_error(st, body, 401, None, "invalid_api_key",
                        "a bad key is refused even when anonymous is allowed")

    gw2 = t.gateway(mock=mock, extra_yaml="auth:\n  anonymous: deny\n")
    for path in ("/healthz", "/readyz"):
        eq(http_request(gw2.port, "GET", path)[0], 200, "%s needs no credential" % path)
    st, _, body = http_request(gw2.port, "GET", "/v1/models")
    assert_openai_error(st, body, 401, None, "missing_api_key", "/v1/models needs one")
    # A refused request with a body closes the connection instead of reading it.
    c = run.RawConn(gw2.port)
    try:
        c.send(run.build_request("POST", CHAT, chat_body()))
        r = c.read_response()
        eq(r.status, 401, "raw refused request")
        eq((r.header("connection") or "").lower(), "close", "refused request closes")
    finally:
        c.close()


class JwksServer:
    """The JWKS URL: a thread serving whatever document `doc` holds."""

    def __init__(self):
        self.doc = "{}"
        self.hits = 0
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits += 1
                data = outer.doc.encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.srv = socketserver.TCPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def _jwt_gateway(t, mock, jwks_line, models_claim=True):
    extra = tenants_yaml(t, {"name": "acme", "models": ["mock-*"]}, {"name": "beta"})
    extra += ("\nauth:\n  anonymous: deny\n  jwt:\n    %s\n    issuer: https://idp.example\n"
              "    audience: sluice\n    tenant_claim: org\n    leeway: 5\n" % jwks_line)
    if models_claim:
        extra += "    models_claim: models\n"
    return t.gateway(mock=mock, extra_yaml=extra)


def test_jwt_algorithms_claims_and_refusals(t):
    rsa = jwtkit.RsaKey(t.dir, "rsa-1")
    ec = jwtkit.EcKey(t.dir, "ec-1")
    hs = jwtkit.HmacKey("hs-1")
    path = os.path.join(t.dir, "jwks.json")
    with open(path, "w") as f:
        f.write(jwtkit.jwks(rsa, ec, hs))
    mock = t.mock()
    gw = _jwt_gateway(t, mock, "jwks_file: %s" % json.dumps(path))
    good = {"iss": "https://idp.example", "aud": "sluice", "org": "acme", "sub": "u1"}

    for key in (rsa, ec, hs):
        st, _, body = post(gw.port, CHAT, chat_body(), bearer(jwtkit.token(key, good)))
        eq(st, 200, "%s token (body %r)" % (key.alg, body[:200]))
    def chat_lines():
        return [r for r in gw.access_log() if r["path"] == CHAT]
    chats = wait_until(lambda: chat_lines()[2:] and chat_lines(), 3,
                       "the access log lines of the three requests")
    eq(len(chats), 3, "access log lines of the three requests")
    eq({r["tenant"] for r in chats}, {"acme"}, "tenant from the org claim")
    # The same token again is found in a worker's cache (two workers: at
    # most one more verification).
    same = jwtkit.token(rsa, dict(good, jti="again"))
    for _ in range(6):
        eq(post(gw.port, CHAT, chat_body(), bearer(same))[0], 200, "repeated token")
    m = gw.metrics()
    hits = int(re.search(r'sluice_auth_jwt_cache_total\{result="hit"\} (\d+)', m).group(1))
    misses = int(re.search(r'sluice_auth_jwt_cache_total\{result="miss"\} (\d+)', m).group(1))
    check(hits >= 4 and misses <= 5, "jwt cache hits %d, misses %d" % (hits, misses))
    st, _, _ = post(gw.port, CHAT, chat_body(),
                    bearer(jwtkit.token(rsa, dict(good, aud=["x", "sluice"]))))
    eq(st, 200, "audience in an array")

    def refused(tok, code, status=401, what=""):
        st, _, body = post(gw.port, CHAT, chat_body(), bearer(tok))
        assert_openai_error(st, body, status, None, None, what)
        err = json.loads(body)["error"]
        if code:
            eq(err["code"], code, "%s code" % what)
        sig = tok.split(".")[2][:20]
        check(not sig or sig not in body.decode(), "%s: no token material" % what)
        return err

    bad_sig = jwtkit.token(rsa, good)
    bad_sig = bad_sig[:-6] + ("A" if bad_sig[-6] != "A" else "B") + bad_sig[-5:]
    refused(bad_sig, None, what="bad signature")
    refused(jwtkit.token(rsa, good, ttl=-60), None, what="expired")
    refused(jwtkit.token(rsa, dict(good, nbf=int(time.time()) + 600)), None, what="nbf ahead")
    refused(jwtkit.token(rsa, dict(good, aud="other")), None, what="wrong audience")
    refused(jwtkit.token(rsa, dict(good, iss="https://evil.example")), None, what="wrong issuer")
    none = jwtkit.token(rsa, good, alg="none", sign=False)
    refused(none, None, what="alg none")
    # Algorithm confusion: HS256 keyed with the RSA key's public modulus.
    confused = jwtkit.token(jwtkit.HmacKey("rsa-1", rsa.n), good, alg="HS256")
    refused(confused, None, what="HS256 with the RSA key")
    refused(jwtkit.token(jwtkit.RsaKey(t.dir, "rsa-9"), good), None, what="unknown kid")
    no_tenant = dict(good)
    del no_tenant["org"]
    refused(jwtkit.token(rsa, no_tenant), None, what="no tenant claim")
    refused(jwtkit.token(rsa, dict(good, org="ghost")), "unknown_tenant", 403, "unknown tenant")

    # Tenant models (mock-*) and the models claim both restrict.
    st, _, body = post(gw.port, CHAT, chat_body(model="mock-large"),
                       bearer(jwtkit.token(ec, dict(good, models=["mock-small"]))))
    assert_openai_error(st, body, 403, "permission_error", "model_not_allowed",
                        "model outside the models claim")
    st, _, _ = post(gw.port, CHAT, chat_body(model="mock-small"),
                    bearer(jwtkit.token(ec, dict(good, models=["mock-small"]))))
    eq(st, 200, "model inside the models claim")
    # /v1/models lists what the caller may use.
    st, _, body = http_request(gw.port, "GET", "/v1/models",
                               headers=bearer(jwtkit.token(ec, dict(good, models=["mock-s*"]))))
    eq(st, 200, "models list with a models claim")
    eq([m["id"] for m in json.loads(body)["data"]], ["mock-small"], "listed models")
    st, _, body = http_request(gw.port, "GET", "/v1/models",
                               headers=bearer(jwtkit.token(ec, good)))
    eq(sorted(m["id"] for m in json.loads(body)["data"]),
       ["mock-embed", "mock-large", "mock-small"], "listed models without a claim")


def test_jwks_url_rotation_keeps_last_good_set(t):
    old, new = jwtkit.RsaKey(t.dir, "old"), jwtkit.EcKey(t.dir, "new")
    srv = JwksServer()
    t.on_cleanup(srv.close)
    srv.doc = jwtkit.jwks(old)
    mock = t.mock()
    gw = _jwt_gateway(t, mock, "jwks_url: \"http://127.0.0.1:%d/jwks\"\n    refresh: 1s"
                      % srv.port, models_claim=False)
    claims = {"iss": "https://idp.example", "aud": "sluice", "org": "beta"}
    eq(post(gw.port, CHAT, chat_body(), bearer(jwtkit.token(old, claims)))[0], 200,
       "token of the first key set")
    eq(post(gw.port, CHAT, chat_body(), bearer(jwtkit.token(new, claims)))[0], 401,
       "token of a key not published yet")
    srv.doc = jwtkit.jwks(old, new)
    wait_until(lambda: post(gw.port, CHAT, chat_body(),
                            bearer(jwtkit.token(new, claims)))[0] == 200, 6,
               "the rotated-in key to be accepted")
    # The IdP breaks: the last good set stays.
    srv.doc = "not json"
    hits = srv.hits
    wait_until(lambda: srv.hits >= hits + 2, 6, "two more fetches of the broken document")
    eq(post(gw.port, CHAT, chat_body(), bearer(jwtkit.token(new, claims)))[0], 200,
       "last good key set kept after a failed refresh")
    gw.wait_stderr(r"jwt: cannot fetch", 5, "the failed refresh to be logged")
    # A key taken out of the set: its tokens stop working, also ones the
    # workers verified (and cached) before.
    old_token = jwtkit.token(old, claims)
    for _ in range(4):
        eq(post(gw.port, CHAT, chat_body(), bearer(old_token))[0], 200, "old key still listed")
    srv.doc = jwtkit.jwks(new)
    wait_until(lambda: post(gw.port, CHAT, chat_body(), bearer(old_token))[0] == 401, 6,
               "a cached token of a withdrawn key to be refused")
    for _ in range(4):
        eq(post(gw.port, CHAT, chat_body(), bearer(old_token))[0], 401,
           "the withdrawn key's token on every worker")
