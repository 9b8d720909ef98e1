# SPDX-License-Identifier: Apache-2.0
"""TLS termination on the host: this kernel has no tls module, so every
connection runs userspace TLS (the kernel TLS path is tested in vm-test/)."""
import json
import os
import re
import signal
import socket
import ssl
import time

import pki
from run import (chat_body, check, eq, fail, http_request, stream_direct, sse_data, sse_events,
                 wait_until)


def _pki(t):
    d = os.path.join(t.dir, "pki")
    os.makedirs(d)
    ca = pki.ca(d)
    p = {
        "dir": d,
        "ca": ca[0],
        "server": pki.leaf(d, ca, "localhost", sans=["DNS:localhost", "IP:127.0.0.1"]),
        "api": pki.leaf(d, ca, "api.example.com", sans=["DNS:api.example.com"]),
        "expired": pki.leaf(d, ca, "localhost", sans=["DNS:localhost", "IP:127.0.0.1"],
                            name="expired", expired=True),
    }
    cca = pki.ca(d, "clientca")
    p["client_ca"] = cca[0]
    p["client"] = pki.leaf(d, cca, "team-a", name="client", client=True)
    other = pki.ca(d, "otherca")
    p["stranger"] = pki.leaf(d, other, "mallory", name="stranger", client=True)
    return p


def _client(p, alpn=("http/1.1",), cert=None, minimum=None, maximum=None):
    ctx = ssl.create_default_context(cafile=p["ca"])
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if cert:
        ctx.load_cert_chain(cert[0], cert[1])
    if minimum:
        ctx.minimum_version = minimum
    if maximum:
        ctx.maximum_version = maximum
    return ctx


def _tls_yaml(p, cert=None, client_ca=False, sni=False, min_version=None):
    cert = cert or p["server"]
    lines = ["tls:", "  cert: %s" % json.dumps(cert[0]), "  key: %s" % json.dumps(cert[1])]
    if min_version:
        lines.append("  min_version: %s" % json.dumps(min_version))
    if client_ca:
        lines.append("  client_ca: %s" % json.dumps(p["client_ca"]))
    if sni:
        lines += ["  sni:",
                  "    - names: [\"api.example.com\"]",
                  "      cert: %s" % json.dumps(p["api"][0]),
                  "      key: %s" % json.dumps(p["api"][1])]
    return "\n".join(lines)


def _gateway(t, p, client_ctx, **tls):
    mock = t.mock()
    gw = t.gateway(mock=mock, extra_yaml=_tls_yaml(p, **tls), tls=client_ctx)
    return mock, gw


def _handshake(port, ctx, server_hostname="localhost"):
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    return ctx.wrap_socket(raw, server_hostname=server_hostname)


def _tls_modes(gw):
    out = {}
    for m in re.finditer(r'^sluice_tls_connections_total\{mode="(\w+)"\} (\d+)$', gw.metrics(),
                         re.M):
        out[m.group(1)] = int(m.group(2))
    return out


def test_tls_listener_serves_requests_and_streams(t):
    p = _pki(t)
    ctx = _client(p)
    mock, gw = _gateway(t, p, ctx)
    body = chat_body("over tls please")
    _, _, direct = http_request(mock.port, "POST", "/v1/chat/completions", body=body)
    st, _, via = http_request(gw.port, "POST", "/v1/chat/completions", body=body, tls=ctx)
    eq(st, 200, "status over TLS")
    eq(via, direct, "body over TLS")
    s = _handshake(gw.port, ctx)
    eq(s.selected_alpn_protocol(), "http/1.1", "ALPN")
    check(s.version() in ("TLSv1.3", "TLSv1.2"), "version %s" % s.version())
    # keep-alive: several requests on the one TLS connection
    payload = json.dumps(chat_body("again")).encode()
    for i in range(3):
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                  b"application/json\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(65536)
            check(chunk, "connection closed during response %d" % i)
            head += chunk
        check(head.startswith(b"HTTP/1.1 200"), "keep-alive response %d: %r" % (i, head[:80]))
        hdr, _, rest = head.partition(b"\r\n\r\n")
        n = int(re.search(rb"(?i)content-length: (\d+)", hdr).group(1))
        while len(rest) < n:
            rest += s.recv(65536)
    s.close()
    # a stream, byte-exact after de-chunking
    sbody = chat_body("stream over tls", stream=True, stream_options={"include_usage": True})
    want = stream_direct(mock.port, sbody, {"x-mock-tokens": "5"})
    got = stream_direct(gw.port, sbody, {"x-mock-tokens": "5"}, tls=ctx)
    eq(got.body, want.body, "stream over TLS")
    eq(sse_data(sse_events(got.body)[-1]), "[DONE]", "stream end")
    modes = _tls_modes(gw)
    check(modes.get("userspace", 0) >= 3, "userspace TLS connections counted: %r" % modes)
    eq(modes.get("ktls", 0), 0, "kTLS connections on a host without the tls module")
    check("kernel TLS unavailable" in gw.stderr(), "start-up line about kTLS:\n%s"
          % gw.stderr()[-1000:])


def test_tls_versions_and_alpn(t):
    p = _pki(t)
    mock, gw = _gateway(t, p, _client(p), min_version="1.3")
    s = _handshake(gw.port, _client(p))
    eq(s.version(), "TLSv1.3", "version with min_version 1.3")
    s.close()
    try:
        _handshake(gw.port, _client(p, maximum=ssl.TLSVersion.TLSv1_2)).close()
        fail("a TLS 1.2-only client got through min_version 1.3")
    except (ssl.SSLError, OSError):
        pass
    try:
        _handshake(gw.port, _client(p, alpn=("h2",))).close()
        fail("an h2-only client got through")
    except (ssl.SSLError, OSError):
        pass
    # without ALPN is fine
    _handshake(gw.port, _client(p, alpn=None)).close()
    modes = _tls_modes(gw)
    check(modes.get("failed", 0) >= 2, "failed handshakes counted: %r" % modes)
    gw.assert_alive()


def test_tls_sni_picks_the_certificate(t):
    p = _pki(t)
    mock, gw = _gateway(t, p, _client(p), sni=True)
    s = _handshake(gw.port, _client(p), server_hostname="api.example.com")
    cn = dict(x[0] for x in s.getpeercert()["subject"])["commonName"]
    eq(cn, "api.example.com", "certificate for SNI api.example.com")
    s.close()
    # A name the gateway has no certificate for gets the default one, which
    # a verifying client refuses for that name.
    try:
        _handshake(gw.port, _client(p), server_hostname="other.example.com").close()
        fail("a client verifying other.example.com accepted the default certificate")
    except ssl.SSLCertVerificationError:
        pass
    ctx = _client(p)
    ctx.check_hostname = False
    s = _handshake(gw.port, ctx, server_hostname="other.example.com")
    cn = dict(x[0] for x in s.getpeercert()["subject"])["commonName"]
    eq(cn, "localhost", "default certificate for an unknown SNI name")
    s.close()


def test_tls_expired_or_untrusted_server_certificate_refused_by_clients(t):
    p = _pki(t)
    mock = t.mock()
    ctx = ssl.create_default_context(cafile=p["ca"])
    time.sleep(1.1)  # the expired certificate's only second has passed
    gw = t.gateway(mock=mock, extra_yaml=_tls_yaml(p, cert=p["expired"]), expect_ready=False)
    gw.wait_stderr(r"listening on", 10, "sluiced to listen")

    def refusal(c):
        try:
            _handshake(gw.port, c).close()
            return None
        except ssl.SSLCertVerificationError as e:
            return e
    err = wait_until(lambda: refusal(ctx), 5, "a refused handshake")
    check("expired" in str(err), "client error names the expiry: %s" % err)
    err = refusal(ssl.create_default_context())  # the system store lacks the test CA
    check(err is not None, "a client without the CA accepted the certificate")
    check(gw.alive(), "sluiced died after refused handshakes")


def test_tls_mutual_accepted_and_refused(t):
    p = _pki(t)
    good = _client(p, cert=p["client"])
    mock, gw = _gateway(t, p, good, client_ca=True)
    st, _, _ = http_request(gw.port, "POST", "/v1/chat/completions", body=chat_body("mtls"),
                            tls=good)
    eq(st, 200, "a client with a certificate from client_ca")
    log = gw.wait_access_log(1, path="/v1/chat/completions")
    line = [r for r in log if r.get("path") == "/v1/chat/completions"][0]
    check("CN=team-a" in (line.get("client_cert") or ""),
          "the access log names the client certificate: %r" % line)
    for what, ctx in (("no certificate", _client(p)),
                      ("a certificate from another CA", _client(p, cert=p["stranger"]))):
        try:
            http_request(gw.port, "GET", "/healthz", tls=ctx, timeout=5)
            fail("a client with %s got through mutual TLS" % what)
        except (ssl.SSLError, OSError, ConnectionError) as e:
            del e


def test_tls_plain_http_on_the_tls_port_gets_a_clear_error(t):
    p = _pki(t)
    mock, gw = _gateway(t, p, _client(p))
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    s.close()
    check(data.startswith(b"HTTP/1.1 400"), "plain HTTP answer: %r" % data[:200])
    body = json.loads(data.partition(b"\r\n\r\n")[2])
    eq(body["error"]["code"], "tls_required", "error code")
    check("TLS" in body["error"]["message"], "message: %r" % body["error"]["message"])
    modes = _tls_modes(gw)
    eq(modes.get("plain_http", 0), 1, "plain HTTP counted")


def test_tls_certificate_reload_keeps_open_connections(t):
    p = _pki(t)
    ctx = _client(p)
    mock, gw = _gateway(t, p, ctx)
    held = _handshake(gw.port, ctx)
    t.on_cleanup(held.close)
    first = dict(x[0] for x in held.getpeercert()["subject"])["commonName"]
    eq(first, "localhost", "certificate before the reload")
    # The api.example.com certificate becomes the default by SIGHUP.
    with open(gw.config_path, "w") as f:
        f.write(gw.config_text.replace(p["server"][0], p["api"][0])
                .replace(p["server"][1], p["api"][1]))
    gw.signal(signal.SIGHUP)
    gw.wait_stderr(r"reload: tls: new connections use .*api\.example\.com\.pem", 5, "the reload")
    ctx2 = _client(p)
    ctx2.check_hostname = False
    s = _handshake(gw.port, ctx2)
    cn = dict(x[0] for x in s.getpeercert()["subject"])["commonName"]
    eq(cn, "api.example.com", "certificate of a connection after the reload")
    s.close()
    held.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    data = held.recv(4096)
    check(data.startswith(b"HTTP/1.1 200"), "connection opened before the reload: %r" % data[:60])
    # A certificate that does not load keeps the running one.
    with open(gw.config_path, "w") as f:
        f.write(gw.config_text.replace(p["server"][0], p["client_ca"]))
    gw.signal(signal.SIGHUP)
    gw.wait_stderr(r"reload: tls: .*kept the running certificates", 5, "the refused reload")
    s = _handshake(gw.port, ctx2)
    cn = dict(x[0] for x in s.getpeercert()["subject"])["commonName"]
    eq(cn, "api.example.com", "certificate after a refused reload")
    s.close()
