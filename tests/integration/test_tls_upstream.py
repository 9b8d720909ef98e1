# SPDX-License-Identifier: Apache-2.0
"""https:// backends: a real TLS server (Python's ssl module, OpenSSL) in
front of mockllm, with certificates made by the openssl command for each
test run.

The server (TlsBackend) also runs on its own, for vm-test/ktls_upstream.sh:

    python3 tests/integration/test_tls_upstream.py serve --backend-port MOCK \\
        --cert C --key K --dir DIR NAME:PORT[:min=1.3][:max=1.2][:after=MODE]...

(see _serve_main)."""
import argparse
import os
import re
import select
import socket
import ssl
import subprocess
import sys
import threading
import time

from run import (assert_openai_error, chat_body, eq, check, free_port, post, sse_data,
                 sse_events, stream_direct, wait_until)


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


_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def _read_message(sock, what):
    """One HTTP/1.1 message framed by Content-Length: head and body bytes,
    or None when the peer closed first."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            return None
        buf += data
    head, _, body = buf.partition(b"\r\n\r\n")
    m = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
    if not m:
        raise ValueError("%s without Content-Length: %r" % (what, head[:200]))
    while len(body) < int(m.group(1)):
        data = sock.recv(65536)
        if not data:
            return None
        body += data
    return head + b"\r\n\r\n", body


class TlsBackend:
    """A TLS server in front of a plain backend port (mockllm).  Each
    connection has one thread that alone uses its SSL object.

    after: None: relay bytes both ways until either side closes.
           "close_notify": one request per connection, its response framed
               by Content-Length and kept alive, then close_notify, then wait
               for the gateway to close the connection.
           "close_notify_eof": the same, but the response is framed by the
               end of the stream (no Content-Length, Connection: close), and
               close_notify is that end.
    events: one dict per finished connection: version, resumed, and for the
    close_notify modes gateway_closed (the gateway closed the connection
    after the close_notify rather than leaving it open) and close_wait_s."""

    def __init__(self, cert, key, backend_port, min_version=None, max_version=None,
                 after=None, port=None, on_event=None):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.set_alpn_protocols(["http/1.1"])
        if min_version:
            self.ctx.minimum_version = _VERSIONS[min_version]
        if max_version:
            self.ctx.maximum_version = _VERSIONS[max_version]
        self.backend_port = backend_port
        self.after = after
        self.on_event = on_event
        self.port = port or free_port()
        self.sock = socket.create_server(("127.0.0.1", self.port))
        self.accepted = 0
        self.handshake_failures = 0
        self.events = []
        self.live = set()
        self.lock = threading.Lock()
        self.stop = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, raw):
        raw.settimeout(10)
        try:
            tls = self.ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            with self.lock:
                self.handshake_failures += 1
            raw.close()
            return
        ev = {"version": tls.version(), "resumed": tls.session_reused}
        with self.lock:
            self.accepted += 1
            self.live.add(tls)
        up = socket.create_connection(("127.0.0.1", self.backend_port), timeout=10)
        try:
            if self.after:
                self._one_exchange(tls, up, ev)
            else:
                self._relay(tls, up)
        except (ssl.SSLError, OSError, ValueError) as e:
            ev["error"] = str(e)
        finally:
            with self.lock:
                self.live.discard(tls)
                self.events.append(ev)
            up.close()
            tls.close()
            if self.on_event:
                self.on_event(ev)

    def _relay(self, tls, up):
        """Bytes both ways; OpenSSL may hold decrypted bytes no select sees."""
        while not self.stop:
            ready = [tls] if tls.pending() else select.select([tls, up], [], [], 0.5)[0]
            for s in ready:
                data = s.recv(65536)
                if not data:
                    return
                (up if s is tls else tls).sendall(data)

    def _one_exchange(self, tls, up, ev):
        req = _read_message(tls, "request")
        if req is None:
            return
        up.sendall(b"".join(req))
        head, body = _read_message(up, "response")
        if self.after == "close_notify_eof":
            head = re.sub(rb"(?im)^(content-length|connection):[^\r\n]*\r\n", b"", head)
            head = head[:-2] + b"Connection: close\r\n\r\n"
        tls.sendall(head + body)
        # unwrap() sends close_notify, then waits for the peer's: the gateway
        # sends none but closes the socket, which ends the wait at once.
        t0 = time.monotonic()
        try:
            tls.unwrap()
            ev["gateway_closed"] = True
        except socket.timeout:
            ev["gateway_closed"] = False
        except (ssl.SSLError, OSError):
            ev["gateway_closed"] = True
        ev["close_wait_s"] = round(time.monotonic() - t0, 3)

    def drop(self):
        """End every open connection (the gateway sees EOF)."""
        with self.lock:
            for s in self.live:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.stop = True
        self.sock.close()


def _backend(t, mock, name="127.0.0.1", **kw):
    d = os.path.join(t.dir, "pki-%s-%d" % (name, free_port()))
    os.makedirs(d)
    ca, cert, key = _make_certs(d, name)
    server = TlsBackend(cert, key, mock.port, **kw)
    t.on_cleanup(server.close)
    return ca, server


def _https(server, ca=None, name="tls", models=("mock-small",), **extra):
    b = {"name": name, "url": "https://127.0.0.1:%d/v1" % server.port, "models": list(models)}
    if ca:
        b["ca_file"] = ca
    b.update(extra)
    return b


def _kernel_tls():
    return os.path.exists("/proc/net/tls_stat")


def _upstream_modes(gw):
    modes = {}
    for line in gw.metrics().splitlines():
        m = re.match(r'sluice_upstream_tls_connections_total\{mode="(\w+)"\} (\d+)$', line)
        if m:
            modes[m.group(1)] = int(m.group(2))
    return modes


def _expect_modes(gw, n, version):
    """n connections counted in the mode this machine gives `version`:
    without the kernel's tls module, userspace; with it, OpenSSL 3.0 hands
    TLS 1.2 to the kernel both ways and TLS 1.3 for sending."""
    want = "userspace" if not _kernel_tls() else "ktls" if version == "1.2" else "ktls_tx"
    modes = _upstream_modes(gw)
    eq(modes.get(want), n, "upstream TLS connections in mode %s (all: %r)" % (want, modes))
    eq(modes.get("failed"), 0, "failed upstream TLS handshakes")


def test_https_backend_relays_byte_exact_and_reuses_connections(t):
    mock = t.mock()
    ca, server = _backend(t, mock)
    gw = t.gateway(backends=[_https(server, ca)], workers=1)
    body = chat_body("secure prompt over tls")
    d_st, _, d_body = post(mock.port, "/v1/chat/completions", body)
    for _ in range(5):
        st, _, g_body = post(gw.port, "/v1/chat/completions", body)
        eq(st, 200, "status through https backend")
        eq(g_body, d_body, "body through https backend")
    # One worker, sequential requests: one TLS connection, kept alive.
    eq(server.accepted, 1, "TLS connections opened for 5 sequential requests")
    sbody = chat_body("stream over tls", stream=True, stream_options={"include_usage": True})
    direct = stream_direct(mock.port, sbody, {"x-mock-tokens": "8"})
    via = stream_direct(gw.port, sbody, {"x-mock-tokens": "8"})
    eq(via.body, direct.body, "stream through https backend")
    eq(sse_data(sse_events(via.body)[-1]), "[DONE]", "stream ends with [DONE]")


def test_https_backend_tls13_tickets_keep_alive_and_resumption(t):
    """A TLS 1.3 backend sends session tickets after the handshake (Python's
    server: two per connection).  They arrive on the kept-alive connection
    between responses; the gateway reads them, keeps the connection, and a
    later connection resumes with one."""
    mock = t.mock()
    ca, server = _backend(t, mock, min_version="1.3")
    gw = t.gateway(backends=[_https(server, ca)], workers=1)
    body = chat_body("tickets")
    _, _, d_body = post(mock.port, "/v1/chat/completions", body)
    for i in range(4):
        st, _, g_body = post(gw.port, "/v1/chat/completions", body)
        eq((st, g_body), (200, d_body), "request %d on the kept-alive TLS 1.3 connection" % i)
    sbody = chat_body("stream between tickets", stream=True,
                      stream_options={"include_usage": True})
    eq(stream_direct(gw.port, sbody, {"x-mock-tokens": "20"}).body,
       stream_direct(mock.port, sbody, {"x-mock-tokens": "20"}).body, "stream over TLS 1.3")
    eq(server.accepted, 1, "TLS connections for 5 sequential requests")
    # The backend ends the connection; the gateway notices, and the next
    # connection resumes the session of a ticket it received.
    server.drop()
    wait_until(lambda: len(server.events) == 1, 5, "the dropped connection to end")
    time.sleep(0.1)
    st, _, g_body = post(gw.port, "/v1/chat/completions", body)
    eq((st, g_body), (200, d_body), "request on a new connection")
    eq(server.accepted, 2, "TLS connections after the drop")
    eq(server.events[0]["version"], "TLSv1.3", "negotiated version")
    server.drop()
    wait_until(lambda: len(server.events) == 2, 5, "the second connection to end")
    eq([e["resumed"] for e in server.events], [False, True], "sessions resumed")
    _expect_modes(gw, 2, "1.3")


def test_https_backend_large_responses_byte_exact(t):
    """Responses of many TLS records (16 KiB each at most), streamed and
    not, arrive byte for byte, over TLS 1.2 and TLS 1.3."""
    mock = t.mock()
    ca12, tls12 = _backend(t, mock, max_version="1.2")
    ca13, tls13 = _backend(t, mock, min_version="1.3")
    gw = t.gateway(backends=[_https(tls12, ca12, "tls12", ["m12"]),
                             _https(tls13, ca13, "tls13", ["m13"])], workers=1)
    hdr = {"x-mock-tokens": "12000"}
    for model in ("m12", "m13"):
        body = chat_body("large over tls", model=model)
        d_st, _, d_body = post(mock.port, "/v1/chat/completions", body, hdr)
        st, _, g_body = post(gw.port, "/v1/chat/completions", body, hdr)
        check(len(d_body) > 64 * 1024, "a large response: %d bytes" % len(d_body))
        eq((st, g_body), (d_st, d_body), "large non-stream response via %s" % model)
        sbody = chat_body("large stream over tls", model=model, stream=True,
                          stream_options={"include_usage": True})
        direct = stream_direct(mock.port, sbody, hdr)
        via = stream_direct(gw.port, sbody, hdr)
        check(len(direct.body) > 64 * 1024, "a large stream: %d bytes" % len(direct.body))
        eq(via.body, direct.body, "large stream via %s" % model)
    eq((tls12.accepted, tls13.accepted), (1, 1), "connections (kept alive)")
    eq(tls12.events + tls13.events, [], "connections that ended")
    modes = _upstream_modes(gw)
    eq(sum(modes.values()), 2, "upstream TLS connections counted: %r" % modes)


def test_https_backend_close_notify_after_response(t):
    """A backend that sends close_notify after each (kept-alive) response:
    the gateway takes it as the end of that connection, closes it, and the
    next request goes over a new one (resuming the session).  The client
    never sees an error."""
    mock = t.mock()
    ca12, cn12 = _backend(t, mock, max_version="1.2", after="close_notify")
    ca13, cn13 = _backend(t, mock, min_version="1.3", after="close_notify")
    gw = t.gateway(backends=[_https(cn12, ca12, "cn12", ["m12"]),
                             _https(cn13, ca13, "cn13", ["m13"])], workers=1)
    for model, server in (("m12", cn12), ("m13", cn13)):
        body = chat_body("close_notify", model=model)
        _, _, d_body = post(mock.port, "/v1/chat/completions", body)
        for i in range(3):
            st, _, g_body = post(gw.port, "/v1/chat/completions", body)
            eq((st, g_body), (200, d_body), "%s request %d" % (model, i))
            wait_until(lambda: len(server.events) == i + 1, 5, "connection %d to end" % i)
        eq(server.accepted, 3, "%s: one connection per request" % model)
        eq([e.get("gateway_closed") for e in server.events], [True] * 3,
           "%s: the gateway closed each connection after close_notify (%r)"
           % (model, server.events))
        eq([e["resumed"] for e in server.events], [False, True, True], "%s resumed" % model)
    check("upstream_errors_total{" not in gw.metrics(), "no upstream errors counted")


def test_https_backend_response_ended_by_close_notify(t):
    """A response framed by the end of the stream, where the end is the
    backend's close_notify: the whole body arrives, as a 200."""
    mock = t.mock()
    ca, server = _backend(t, mock, max_version="1.2", after="close_notify_eof")
    gw = t.gateway(backends=[_https(server, ca)], workers=1)
    body = chat_body("ended by close_notify")
    _, _, d_body = post(mock.port, "/v1/chat/completions", body, {"x-mock-tokens": "3000"})
    for i in range(2):
        st, _, g_body = post(gw.port, "/v1/chat/completions", body, {"x-mock-tokens": "3000"})
        eq((st, g_body), (200, d_body), "close-delimited response %d" % i)
    wait_until(lambda: len(server.events) == 2, 5, "both connections to end")
    eq([e.get("gateway_closed") for e in server.events], [True, True], "gateway closed")
    _expect_modes(gw, 2, "1.2")


def test_https_backend_untrusted_certificate_is_refused(t):
    mock = t.mock()
    _, server = _backend(t, mock)
    # No ca_file: the system store does not know the test CA.
    gw = t.gateway(backends=[_https(server)])
    st, _, body = post(gw.port, "/v1/chat/completions", chat_body("hi"))
    err = assert_openai_error(st, body, 502, "server_error", "upstream_tls_error",
                              "untrusted backend certificate")
    check("certificate" in err["message"], "message names the certificate: %r" % err["message"])
    eq(mock.stats()["requests"], 0, "requests that reached the backend")
    eq(_upstream_modes(gw).get("failed"), 1, "failed upstream TLS handshakes")
    gw.assert_alive()


def test_https_backend_wrong_host_name_is_refused(t):
    mock = t.mock()
    ca, server = _backend(t, mock, name="other.example")
    gw = t.gateway(backends=[_https(server, ca)])
    st, _, body = post(gw.port, "/v1/chat/completions", chat_body("hi"))
    assert_openai_error(st, body, 502, "server_error", "upstream_tls_error",
                        "certificate for another host")
    eq(mock.stats()["requests"], 0, "requests that reached the backend")


def test_https_backend_verification_can_be_turned_off(t):
    mock = t.mock()
    _, server = _backend(t, mock, name="other.example")
    gw = t.gateway(backends=[_https(server, tls_verify="false")])
    st, _, _ = post(gw.port, "/v1/chat/completions", chat_body("hi"))
    eq(st, 200, "status with tls_verify: false")


def test_plain_http_to_a_tls_backend_fails_cleanly(t):
    mock = t.mock()
    _, server = _backend(t, mock)
    # http:// to a TLS port: the TLS server answers garbage (an alert).
    gw = t.gateway(backends=[{"name": "wrong", "url": "http://127.0.0.1:%d/v1" % server.port,
                              "models": ["mock-small"]}], upstream_first_byte="2s")
    st, _, body = post(gw.port, "/v1/chat/completions", chat_body("hi"))
    check(st in (502, 504), "status for http:// to a TLS port: %d" % st)
    assert_openai_error(st, body, st, "server_error", None, "http to a TLS port")
    gw.assert_alive()


def _event_line(name, ev):
    """One shell-friendly line: name=N version=V resumed=0|1 ..."""
    fields = ["name=%s" % name]
    for k, v in ev.items():
        v = int(v) if isinstance(v, bool) else v
        fields.append("%s=%s" % (k, str(v).replace(" ", "_")))
    return " ".join(fields) + "\n"


def _serve_main(argv):
    """Backends alone, until killed (vm-test/ktls_upstream.sh): each
    NAME:PORT[:min=V][:max=V][:after=MODE] is one TlsBackend; its ended
    connections go to DIR/NAME.events, one _event_line each.  DIR/ready
    appears once all of them listen."""
    ap = argparse.ArgumentParser(prog="test_tls_upstream.py serve")
    ap.add_argument("--backend-port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("servers", nargs="+", metavar="NAME:PORT[:min=V][:max=V][:after=MODE]")
    a = ap.parse_args(argv)
    lock = threading.Lock()
    for spec in a.servers:
        name, port, *opts = spec.split(":")
        kw = dict(o.split("=", 1) for o in opts)
        out = open(os.path.join(a.dir, name + ".events"), "w", buffering=1)

        def log(ev, name=name, out=out):
            with lock:
                out.write(_event_line(name, ev))
        TlsBackend(a.cert, a.key, a.backend_port, kw.get("min"), kw.get("max"),
                   kw.get("after"), int(port), log)
    open(os.path.join(a.dir, "ready"), "w").close()
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    if sys.argv[1:2] != ["serve"]:
        sys.exit("usage: test_tls_upstream.py serve --port P --backend-port B ... "
                 "(the tests run through run.py)")
    _serve_main(sys.argv[2:])
