# SPDX-License-Identifier: Apache-2.0
"""
The admin listener (issue 9, case 7): /metrics and /admin/reload live on
a listener of their own, behind an optional token; the API listener does
not serve them to anyone; the probes answer on both.
"""
import json
import os
import re
import socket
import subprocess

import run
from run import (RawConn, assert_openai_error, build_request, chat_body, check, eq, fail,
                 http_request, post, wait_until)

CHAT = "/v1/chat/completions"
TOKEN = "admin-token-0123456789abcdef"


def _keyed_tenant(t, gw_opts=None):
    """A gateway with auth.anonymous: deny and tenant acme with one key."""
    keys = os.path.join(t.dir, "keys", "acme")
    extra = ("tenants:\n  - name: acme\n    keys_file: %s\nauth:\n  anonymous: deny\n"
             % json.dumps(keys))
    mock = t.mock()
    gw = t.gateway(mock=mock, extra_yaml=extra, **(gw_opts or {}))
    p = subprocess.run([os.path.join(run.BUILD, "sluicectl"), "key", "create", "acme", "-c",
                        gw.config_path], capture_output=True, text=True, timeout=20)
    eq(p.returncode, 0, "sluicectl key create (stderr %r)" % p.stderr)
    key = p.stdout.strip().splitlines()[-1].strip()
    wait_until(lambda: post(gw.port, CHAT, chat_body(), {"Authorization": "Bearer " + key})[0]
               == 200, 5, "the new key to work")
    return mock, gw, key


def test_api_listener_does_not_serve_metrics(t):
    mock, gw, key = _keyed_tenant(t)
    for headers, who in (({}, "without a key"),
                         ({"Authorization": "Bearer " + key}, "with a valid key")):
        for method in ("GET", "HEAD"):
            st, _, body = http_request(gw.port, method, "/metrics", headers=headers)
            if method == "HEAD":
                eq(st, 404, "HEAD /metrics on the API listener %s" % who)
                continue
            assert_openai_error(st, body, 404, "invalid_request_error", "unknown_url",
                                "GET /metrics on the API listener %s" % who)
            check(b"acme" not in body, "the 404 names no tenant: %r" % body)
        assert_openai_error(*post(gw.port, "/admin/reload", {}, headers)[::2], 404,
                            "invalid_request_error", "unknown_url",
                            "POST /admin/reload on the API listener %s" % who)
    # The probes stay on the API listener, without a key.
    for path in ("/healthz", "/readyz"):
        eq(http_request(gw.port, "GET", path)[0], 200, "%s on the API listener" % path)

    # The admin listener has them, and only them.
    text = gw.metrics()
    check(re.search(r'^sluice_tenant_requests_total\{tenant="acme"\} [1-9]', text, re.M),
          "admin /metrics counts acme's request:\n%s" % text[-1500:])
    for path in ("/healthz", "/readyz"):
        eq(gw.admin_request("GET", path)[0], 200, "%s on the admin listener" % path)
    before = mock.stats()["requests"]
    st, _, body = gw.admin_request("POST", CHAT, body=chat_body(),
                                   headers={"Authorization": "Bearer " + key})
    assert_openai_error(st, body, 404, "invalid_request_error", "unknown_url",
                        "chat on the admin listener")
    st, _, body = gw.admin_request("GET", "/v1/models")
    assert_openai_error(st, body, 404, "invalid_request_error", "unknown_url",
                        "/v1/models on the admin listener")
    eq(mock.stats()["requests"], before, "backend requests after API calls to the admin port")


def test_admin_token(t):
    mock = t.mock()
    gw = t.gateway(mock=mock, admin_token=TOKEN)
    eq(gw.admin_request("GET", "/metrics")[0], 200, "/metrics with the token")
    st, _, body = gw.admin_request("GET", "/metrics", token="")
    assert_openai_error(st, body, 401, "invalid_request_error", "missing_admin_token",
                        "/metrics without a token")
    check("sluice_" not in body.decode(), "a refused scrape shows no metrics")
    for wrong, what in ((TOKEN[:-1], "one byte short"), (TOKEN + "x", "one byte more"),
                        (TOKEN[:-1] + "X", "last byte wrong"), ("x" * len(TOKEN), "same length")):
        st, _, body = gw.admin_request("GET", "/metrics", token=wrong)
        assert_openai_error(st, body, 401, "invalid_request_error", "invalid_admin_token",
                            "/metrics with a token %s" % what)
        check(wrong.encode() not in body, "the refusal does not echo the token")
    st, _, body = gw.admin_request("GET", "/metrics", token="",
                                   headers={"Authorization": "Basic " + TOKEN})
    assert_openai_error(st, body, 401, None, "missing_admin_token", "another auth scheme")
    # Without the token, not even which paths exist.
    st, _, body = gw.admin_request("GET", "/nope", token="")
    assert_openai_error(st, body, 401, None, "missing_admin_token", "unknown path, no token")
    st, _, body = gw.admin_request("GET", "/nope")
    assert_openai_error(st, body, 404, None, "unknown_url", "unknown path with the token")
    # Probes need none.
    for path in ("/healthz", "/readyz"):
        eq(gw.admin_request("GET", path, token="")[0], 200, "%s without a token" % path)
    # A refused request with a body closes rather than read it.
    c = RawConn(gw.admin_port)
    try:
        c.send(build_request("POST", "/admin/reload", {"x": 1}))
        r = c.read_response()
        eq(r.status, 401, "reload without a token")
        eq((r.header("connection") or "").lower(), "close", "refused reload closes")
    finally:
        c.close()
    check("reload:" not in gw.stderr(), "a refused reload reloaded:\n%s" % gw.stderr()[-1500:])


def test_admin_reload_rotates_the_token(t):
    mock = t.mock()
    gw = t.gateway(mock=mock, admin_token=TOKEN)
    st, _, body = gw.admin_request("GET", "/admin/reload")
    assert_openai_error(st, body, 405, None, "method_not_allowed", "GET /admin/reload")
    new = "rotated-token-abcdef0123456789"
    with open(gw.config_path) as f:
        text = f.read()
    with open(gw.config_path, "w") as f:
        f.write(text.replace(json.dumps(TOKEN), json.dumps(new)))
    st, _, body = gw.admin_request("POST", "/admin/reload", body=b"")
    eq((st, json.loads(body)), (202, {"status": "reload requested"}), "POST /admin/reload")
    gw.wait_stderr(r"reload: applied", 5, "the reload asked over HTTP")
    st, _, body = gw.admin_request("GET", "/metrics")
    assert_openai_error(st, body, 401, None, "invalid_admin_token", "the old token")
    eq(gw.admin_request("GET", "/metrics", token=new)[0], 200, "the new token")
    eq(len(re.findall(r"reload: applied", gw.stderr())), 1, "reloads")

    # A file the reload refuses keeps the running token.
    with open(gw.config_path, "w") as f:
        f.write(text.replace(json.dumps(TOKEN), '"short"'))
    eq(gw.admin_request("POST", "/admin/reload", token=new)[0], 202, "reload of a bad file")
    gw.wait_stderr(r"reload: .*admin\.token: must be at least 16 characters; kept the running",
                   5, "the refused reload")
    eq(gw.admin_request("GET", "/metrics", token=new)[0], 200, "the running token")


def test_no_admin_section_serves_no_metrics(t):
    mock = t.mock()
    gw = t.gateway(mock=mock, admin=False, extra_yaml="auth:\n  anonymous: deny\n")
    st, _, body = http_request(gw.port, "GET", "/metrics")
    assert_openai_error(st, body, 404, "invalid_request_error", "unknown_url", "/metrics")
    gw.wait_stderr(r"admin listener off \(no admin: section\): /metrics is not served", 5,
                   "the start-up line about /metrics")


def test_admin_listen_errors(t):
    mock = t.mock()
    port = run.free_port()
    # kernel off: the default pin root is the machine's, and maps of
    # another layout there would stop start-up before the admin listener.
    base = ("listen: \"127.0.0.1:%d\"\nkernel: {enabled: false}\n"
            "backends:\n  - name: m\n    url: %s\n    models: [m]\n"
            % (port, json.dumps(mock.url)))
    path = os.path.join(t.dir, "bad.yaml")
    for admin, want in (("admin:\n  listen: \"127.0.0.1\"\n",
                         r":\d+: admin\.listen: must be host:port, \[address\]:port or :port"),
                        ("admin:\n  listen: \"127.0.0.2:%d\"\n" % port,
                         r":\d+: admin\.listen: must use another port than listen \(%d\)" % port),
                        ("admin:\n  listen: \"bad host:1\"\n",
                         r":\d+: admin\.listen: cannot resolve bad host")):
        with open(path, "w") as f:
            f.write(base + admin)
        p = subprocess.run([os.path.join(run.BUILD, "sluiced"), "--check", "-c", path],
                           capture_output=True, text=True, timeout=10)
        eq(p.returncode, 1, "--check exit status for %r" % admin)
        check(re.match(re.escape(path) + want, p.stderr), "--check said %r, want %s"
              % (p.stderr, want))

    # A taken admin port stops start-up, before anything serves.
    busy = socket.socket()
    t.on_cleanup(busy.close)
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    with open(path, "w") as f:
        f.write(base + "admin:\n  listen: \"127.0.0.1:%d\"\n" % busy.getsockname()[1])
    p = subprocess.run([os.path.join(run.BUILD, "sluiced"), "-c", path],
                       capture_output=True, text=True, timeout=20)
    eq(p.returncode, 1, "sluiced with a taken admin port")
    check(re.search(r"admin\.listen 127\.0\.0\.1:\d+: Address already in use", p.stderr),
          "stderr names the admin listener: %r" % p.stderr[-1000:])


def test_kernel_does_not_count_admin_connections(t):
    """The admin port is not a gateway port: XDP and sockops leave its
    connections alone, so a tenant at its connection cap can still be
    watched from its own network, and scrapes are not its connections."""
    import test_kernel as k
    env = k.setup(t)
    env.start(tenants=k.tenant_yaml("capped", ["10.199.0.3/32"], max_connections=1))
    held = []
    t.on_cleanup(lambda: [s.close() for s in held])
    s = k.connect_from(env, k.ACME, 5)
    held.append(s)
    eq(k.healthz_on(s)[0], 200, "the capped tenant's one connection")
    for i in range(3):
        with run.in_netns(env.ns.cl):
            a = socket.socket()
        held.append(a)
        a.settimeout(5)
        a.bind((k.ACME, 0))
        a.connect((env.ns.gw_addr, env.gw.admin_port))
        a.sendall(b"GET /metrics HTTP/1.1\r\nHost: sluice\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            d = a.recv(65536)
            if not d:
                fail("admin connection %d from the capped network closed: %r" % (i, head))
            head += d
        eq(int(head.split(b" ")[1]), 200, "admin connection %d from the capped network" % i)
    eq(env.metric("sluice_tenant_active_connections", 'tenant="capped"'), 1,
       "capped tenant's active connections with three admin connections open")
