# SPDX-License-Identifier: Apache-2.0
"""A scripted backend for what mockllm will not do: send a response the
test writes byte for byte (a malformed status, hop-by-hop headers, one
line of 64 MiB).  It stands in for a hostile or broken model provider."""
import re
import socket
import threading

from run import free_port


def read_request(sock):
    """One request (head and Content-Length body) from sock, or None at EOF."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = sock.recv(65536)
        if not d:
            return None
        buf += d
    head, _, body = buf.partition(b"\r\n\r\n")
    m = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
    want = int(m.group(1)) if m else 0
    while len(body) < want:
        d = sock.recv(65536)
        if not d:
            return None
        body += d
    return head + b"\r\n\r\n" + body


class RawBackend:
    """Accepts connections; for each request calls respond(sock, request),
    which writes the response and returns True to keep the connection for
    the next request.  requests counts the requests read."""

    def __init__(self, ctx, respond):
        self.respond = respond
        self.port = free_port()
        self.url = "http://127.0.0.1:%d/v1" % self.port
        self.sock = socket.create_server(("127.0.0.1", self.port))
        self.requests = []
        self.errors = []
        self.lock = threading.Lock()
        self.stop = False
        self.conns = set()
        threading.Thread(target=self._accept_loop, daemon=True).start()
        ctx.on_cleanup(self.close)

    def close(self):
        self.stop = True
        self.sock.close()
        with self.lock:
            for c in list(self.conns):
                try:
                    c.close()
                except OSError:
                    pass

    def _accept_loop(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.conns.add(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        c.settimeout(60)
        try:
            while not self.stop:
                req = read_request(c)
                if req is None:
                    break
                with self.lock:
                    self.requests.append(req)
                if not self.respond(c, req):
                    break
        except OSError as e:
            with self.lock:
                self.errors.append(str(e))
        finally:
            with self.lock:
                self.conns.discard(c)
            c.close()
