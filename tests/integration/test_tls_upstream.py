# SPDX-License-Identifier: Apache-2.0
"""https:// backends: a real TLS server (Python's ssl module, OpenSSL) in
front of mockllm, with certificates made by the openssl command for each
test run."""
import os
import socket
import ssl
import subprocess
import threading

from run import (assert_openai_error, chat_body, eq, check, free_port, post, sse_data,
                 sse_events, stream_direct)


def _openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)


def _make_certs(d, name="127.0.0.1"):
    """A CA and a server certificate for `name` (IP or DNS SAN) signed by it."""
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=sluice test CA", cwd=d)
    san = ("IP:" if name[0].isdigit() else "DNS:") + name
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\n" % san)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=%s" % name, cwd=d)
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf",
             cwd=d)
    return os.path.join(d, "ca.pem"), os.path.join(d, "server.pem"), os.path.join(d, "server.key")


class TlsRelay:
    """Terminates TLS and relays bytes to a plain backend port."""

    def __init__(self, cert, key, backend_port):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.set_alpn_protocols(["http/1.1"])
        self.backend_port = backend_port
        self.port = free_port()
        self.sock = socket.create_server(("127.0.0.1", self.port))
        self.accepted = 0
        self.handshake_failures = 0
        self.stop = False
        self.threads = []
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self.threads.append(t)

    def _accept_loop(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(c,), daemon=True)
            t.start()

    def _serve(self, raw):
        raw.settimeout(10)
        try:
            tls = self.ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            self.handshake_failures += 1
            raw.close()
            return
        self.accepted += 1
        up = socket.create_connection(("127.0.0.1", self.backend_port), timeout=10)

        def pump(src, dst):
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    dst.sendall(data)
            except OSError:
                pass
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        t = threading.Thread(target=pump, args=(up, tls), daemon=True)
        t.start()
        pump(tls, up)
        t.join(5)
        tls.close()
        up.close()

    def close(self):
        self.stop = True
        self.sock.close()


def _relay(t, mock, name="127.0.0.1"):
    d = os.path.join(t.dir, "pki-" + name)
    os.makedirs(d)
    ca, cert, key = _make_certs(d, name)
    relay = TlsRelay(cert, key, mock.port)
    t.on_cleanup(relay.close)
    return ca, relay


def test_https_backend_relays_byte_exact_and_reuses_connections(t):
    mock = t.mock()
    ca, relay = _relay(t, mock)
    gw = t.gateway(backends=[{"name": "tls", "url": "https://127.0.0.1:%d/v1" % relay.port,
                              "ca_file": ca, "models": ["mock-small"]}], workers=1)
    body = chat_body("secure prompt over tls")
    d_st, _, d_body = post(mock.port, "/v1/chat/completions", body)
    for _ in range(5):
        st, _, g_body = post(gw.port, "/v1/chat/completions", body)
        eq(st, 200, "status through https backend")
        eq(g_body, d_body, "body through https backend")
    # One worker, sequential requests: one TLS connection, kept alive.
    eq(relay.accepted, 1, "TLS connections opened for 5 sequential requests")
    sbody = chat_body("stream over tls", stream=True, stream_options={"include_usage": True})
    direct = stream_direct(mock.port, sbody, {"x-mock-tokens": "8"})
    via = stream_direct(gw.port, sbody, {"x-mock-tokens": "8"})
    eq(via.body, direct.body, "stream through https backend")
    eq(sse_data(sse_events(via.body)[-1]), "[DONE]", "stream ends with [DONE]")


def test_https_backend_untrusted_certificate_is_refused(t):
    mock = t.mock()
    _, relay = _relay(t, mock)
    # No ca_file: the system store does not know the test CA.
    gw = t.gateway(backends=[{"name": "tls", "url": "https://127.0.0.1:%d/v1" % relay.port,
                              "models": ["mock-small"]}])
    st, _, body = post(gw.port, "/v1/chat/completions", chat_body("hi"))
    err = assert_openai_error(st, body, 502, "server_error", "upstream_tls_error",
                              "untrusted backend certificate")
    check("certificate" in err["message"], "message names the certificate: %r" % err["message"])
    eq(mock.stats()["requests"], 0, "requests that reached the backend")
    gw.assert_alive()


def test_https_backend_wrong_host_name_is_refused(t):
    mock = t.mock()
    ca, relay = _relay(t, mock, name="other.example")
    gw = t.gateway(backends=[{"name": "tls", "url": "https://127.0.0.1:%d/v1" % relay.port,
                              "ca_file": ca, "models": ["mock-small"]}])
    st, _, body = post(gw.port, "/v1/chat/completions", chat_body("hi"))
    assert_openai_error(st, body, 502, "server_error", "upstream_tls_error",
                        "certificate for another host")
    eq(mock.stats()["requests"], 0, "requests that reached the backend")


def test_https_backend_verification_can_be_turned_off(t):
    mock = t.mock()
    _, relay = _relay(t, mock, name="other.example")
    gw = t.gateway(backends=[{"name": "tls", "url": "https://127.0.0.1:%d/v1" % relay.port,
                              "tls_verify": "false", "models": ["mock-small"]}])
    st, _, _ = post(gw.port, "/v1/chat/completions", chat_body("hi"))
    eq(st, 200, "status with tls_verify: false")


def test_plain_http_to_a_tls_backend_fails_cleanly(t):
    mock = t.mock()
    _, relay = _relay(t, mock)
    # http:// to a TLS port: the TLS server answers garbage (an alert).
    gw = t.gateway(backends=[{"name": "wrong", "url": "http://127.0.0.1:%d/v1" % relay.port,
                              "models": ["mock-small"]}], upstream_first_byte="2s")
    st, _, body = post(gw.port, "/v1/chat/completions", chat_body("hi"))
    check(st in (502, 504), "status for http:// to a TLS port: %d" % st)
    assert_openai_error(st, body, st, "server_error", None, "http to a TLS port")
    gw.assert_alive()
