# SPDX-License-Identifier: Apache-2.0
"""
What the backend learns about the client (issue 9, case 8): identity
headers a client wrote itself (X-Forwarded-For, X-Real-IP, Forwarded, ...)
and headers that look like the gateway's own (x-sluice-*) never reach the
backend from an untrusted peer; a trusted proxy's are kept and extended by
the real peer; x-sluice-tenant comes from the gateway alone.

mockllm shows the headers it received (x-mock-record-headers ->
/mock/stats last_headers).
"""
import http.client
import json
import os
import signal
import subprocess

import run
from run import chat_body, check, eq, http_request, post, wait_until

CHAT = "/v1/chat/completions"
UNTRUSTED, TRUSTED = "127.0.0.1", "127.0.0.2"

# Everything a client might write to pass itself off as someone, or as the
# gateway, in the spellings it might choose.
SPOOFED = [
    ("X-Forwarded-For", "203.0.113.66"),
    ("x-real-ip", "203.0.113.66"),
    ("Forwarded", "for=203.0.113.66;proto=https"),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Host", "admin.internal"),
    ("X-Client-IP", "203.0.113.66"),
    ("True-Client-IP", "203.0.113.66"),
    ("X-Sluice-Tenant", "root"),
    ("x-sluice-admin", "1"),
]
IDENTITY = {"x-forwarded-for", "x-real-ip", "forwarded", "x-forwarded-proto",
            "x-forwarded-host", "x-client-ip", "true-client-ip"}


def _send(gw, mock, headers, source=UNTRUSTED):
    """One chat request from source with these (name, value) headers, a
    name repeated as the client repeats it; the headers the backend
    received, as [(lower-case name, value)]."""
    body = json.dumps(chat_body("forwarding")).encode()
    with run.in_netns(gw.netns):
        conn = http.client.HTTPConnection(gw.host, gw.port, timeout=10,
                                          source_address=(source, 0))
        conn.connect()
    try:
        conn.putrequest("POST", CHAT)
        for k, v in [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                     ("x-mock-record-headers", "1"), ("X-Custom", "kept as is")] + headers:
            conn.putheader(k, v)
        conn.endheaders(body)
        r = conn.getresponse()
        data = r.read()
        eq(r.status, 200, "chat status (body %r)" % data[:300])
    finally:
        conn.close()
    got = mock.stats()["last_headers"]
    check(isinstance(got, list), "mockllm recorded no headers: %r" % got)
    return [(k.lower(), v) for k, v in got]


def _values(got, name):
    return [v for k, v in got if k == name]


def _identity(got):
    return sorted((k, v) for k, v in got if k in IDENTITY or k.startswith("x-sluice"))


def test_spoofed_identity_headers_stripped_from_untrusted_peer(t):
    mock = t.mock()
    gw = t.gateway(mock=mock)   # the default: no proxy is trusted
    got = _send(gw, mock, SPOOFED)
    eq(_identity(got), [("x-forwarded-for", UNTRUSTED), ("x-forwarded-proto", "http")],
       "identity headers the backend got from an untrusted peer")
    eq(_values(got, "x-custom"), ["kept as is"], "an ordinary header")
    # Without any identity header of its own, the same.
    got = _send(gw, mock, [])
    eq(_identity(got), [("x-forwarded-for", UNTRUSTED), ("x-forwarded-proto", "http")],
       "identity headers of a plain request")


def test_trusted_proxy_headers_kept_and_extended(t):
    mock = t.mock()
    gw = t.gateway(mock=mock, extra_yaml="forwarding:\n  trusted_proxies: [\"%s/32\"]\n"
                   "  headers: both\n" % TRUSTED)
    proxy = [("X-Forwarded-For", "203.0.113.9, 10.0.0.1"), ("X-Forwarded-For", "10.0.0.2"),
             ("X-Forwarded-Proto", "https"), ("X-Real-IP", "203.0.113.9"),
             ("Forwarded", "for=203.0.113.9;proto=https"),
             ("X-Sluice-Tenant", "root")]
    got = _send(gw, mock, proxy, source=TRUSTED)
    eq(_values(got, "x-forwarded-for"), ["203.0.113.9, 10.0.0.1, 10.0.0.2, %s" % TRUSTED],
       "X-Forwarded-For from a trusted proxy: its list, then the proxy")
    eq(_values(got, "x-forwarded-proto"), ["https"], "the proxy's X-Forwarded-Proto, once")
    eq(_values(got, "x-real-ip"), ["203.0.113.9"], "the proxy's X-Real-IP")
    eq(_values(got, "forwarded"),
       ["for=203.0.113.9;proto=https, for=%s;proto=http" % TRUSTED],
       "Forwarded: the proxy's element, then this hop")
    eq(_values(got, "x-sluice-tenant"), [], "x-sluice-* not even from a trusted proxy")

    # The same headers from a peer outside trusted_proxies.
    got = _send(gw, mock, proxy, source=UNTRUSTED)
    eq(_identity(got), [("forwarded", "for=%s;proto=http" % UNTRUSTED),
                        ("x-forwarded-for", UNTRUSTED), ("x-forwarded-proto", "http")],
       "identity headers from an untrusted peer, headers: both")

    # A reload that trusts nobody applies to the next request.
    with open(gw.config_path) as f:
        text = f.read()
    with open(gw.config_path, "w") as f:
        f.write(text.replace('trusted_proxies: ["%s/32"]' % TRUSTED, "trusted_proxies: []"))
    gw.signal(signal.SIGHUP)
    gw.wait_stderr(r"reload: applied", 5, "the reload")
    got = _send(gw, mock, proxy, source=TRUSTED)
    eq(_identity(got), [("forwarded", "for=%s;proto=http" % TRUSTED),
                        ("x-forwarded-for", TRUSTED), ("x-forwarded-proto", "http")],
       "the former proxy's headers after the reload")


def test_tenant_header_from_the_authenticated_tenant(t):
    mock = t.mock()
    keys = os.path.join(t.dir, "keys", "acme")
    gw = t.gateway(mock=mock, extra_yaml=(
        "tenants:\n  - name: acme\n    keys_file: %s\n  - name: guest\n"
        "auth:\n  anonymous: guest\nforwarding:\n  tenant_header: true\n"
        "  headers: forwarded\n" % json.dumps(keys)))
    p = subprocess.run([os.path.join(run.BUILD, "sluicectl"), "key", "create", "acme", "-c",
                        gw.config_path], capture_output=True, text=True, timeout=20)
    eq(p.returncode, 0, "sluicectl key create (stderr %r)" % p.stderr)
    key = p.stdout.strip().splitlines()[-1].strip()
    wait_until(lambda: post(gw.port, CHAT, chat_body(), {"Authorization": "Bearer " + key})[0]
               == 200, 5, "the new key to work")

    got = _send(gw, mock, [("Authorization", "Bearer " + key), ("X-Sluice-Tenant", "guest")])
    eq(_identity(got), [("forwarded", "for=%s;proto=http" % UNTRUSTED),
                        ("x-sluice-tenant", "acme")],
       "identity headers of acme's request, headers: forwarded")
    eq(_values(got, "authorization"), [], "the client's key is not forwarded")
    got = _send(gw, mock, [("X-Sluice-Tenant", "acme")])
    eq(_values(got, "x-sluice-tenant"), ["guest"], "an anonymous request claiming acme")


def test_ipv6_peer_quoted_in_forwarded_and_none_adds_nothing(t):
    mock = t.mock()
    gw = t.gateway(mock=mock, host="::1", extra_yaml="forwarding:\n  headers: both\n")
    got = _send(gw, mock, SPOOFED, source="::1")
    eq(_identity(got), [("forwarded", 'for="[::1]";proto=http'), ("x-forwarded-for", "::1"),
                        ("x-forwarded-proto", "http")],
       "identity headers of an IPv6 peer")

    gw2 = t.gateway(mock=mock, extra_yaml="forwarding:\n  headers: none\n")
    got = _send(gw2, mock, SPOOFED)
    eq(_identity(got), [], "headers: none, untrusted peer: nothing about the client")


def test_https_listener_says_https(t):
    import test_tls_listen as tl
    p = tl._pki(t)
    mock = t.mock()
    gw = t.gateway(mock=mock, extra_yaml=tl._tls_yaml(p), tls=tl._client(p))
    st, _, body = http_request(gw.port, "POST", CHAT, body=chat_body("over tls"), tls=gw.tls,
                               host="localhost",
                               headers={"x-mock-record-headers": "1",
                                        "X-Forwarded-Proto": "http"})
    eq(st, 200, "chat over TLS (body %r)" % body[:300])
    got = [(k.lower(), v) for k, v in mock.stats()["last_headers"]]
    eq(_identity(got), [("x-forwarded-for", "127.0.0.1"), ("x-forwarded-proto", "https")],
       "identity headers of a TLS client")
