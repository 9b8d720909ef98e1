#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Open N keep-alive HTTP client connections and hold them idle.

    idle_conns.py HOST:PORT N [--path /healthz]

Each connection sends one "GET /healthz HTTP/1.1" and reads the whole
response, so the server sees real HTTP clients parked between requests, not
half-open sockets.  When all N have their response, prints "ready N" on
stdout and holds them until SIGTERM or SIGINT.  Exits non-zero when a
connection fails, gets a non-2xx answer, is told to close, or is closed by
the server while held.
"""
import argparse
import resource
import selectors
import signal
import socket
import sys
import time

BATCH = 500          # connections in flight at once while opening


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return
    if hard != resource.RLIM_INFINITY and hard < need:
        try:                        # root may raise the hard limit too
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
            return
        except (ValueError, OSError):
            sys.exit(f"idle_conns: need {need} open files, hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def response_done(buf):
    """True when buf holds one whole response (Content-Length bodies only)."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return False
    length = 0
    for line in buf[:head_end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return len(buf) >= head_end + 4 + length


def check_response(buf):
    head = buf[:buf.find(b"\r\n\r\n")].decode("latin-1")
    status = head.split("\r\n", 1)[0]
    parts = status.split(" ")
    if len(parts) < 2 or not parts[1].startswith("2"):
        raise RuntimeError(f"non-2xx answer: {status!r}")
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "connection" and "close" in value.lower():
            raise RuntimeError("server asked to close the connection")


def open_batch(host, port, n, request, deadline):
    """Open n connections, send the request on each, wait for every answer."""
    sel = selectors.DefaultSelector()
    socks, bufs = [], {}
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.connect((host, port))
        s.sendall(request)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        socks.append(s)
        bufs[s] = b""
    pending = n
    while pending:
        timeout = deadline - time.monotonic()
        if timeout <= 0:
            raise RuntimeError(f"{pending} responses did not arrive in time")
        for key, _ in sel.select(timeout):
            s = key.fileobj
            data = s.recv(65536)
            if not data:
                raise RuntimeError("server closed a connection before answering")
            bufs[s] += data
            if response_done(bufs[s]):
                check_response(bufs[s])
                sel.unregister(s)
                pending -= 1
    sel.close()
    return socks


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("addr", help="HOST:PORT")
    ap.add_argument("n", type=int, help="connections to open")
    ap.add_argument("--path", default="/healthz")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to open them all")
    args = ap.parse_args()

    host, _, port = args.addr.rpartition(":")
    port = int(port)
    raise_nofile(args.n + 64)
    request = (f"GET {args.path} HTTP/1.1\r\nHost: {args.addr}\r\n"
               "User-Agent: sluice-idle-conns\r\nAccept: */*\r\n\r\n").encode()

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))

    deadline = time.monotonic() + args.timeout
    held = []
    try:
        while len(held) < args.n and not stop:
            held += open_batch(host, port, min(BATCH, args.n - len(held)), request, deadline)
    except (OSError, RuntimeError, ValueError) as e:
        print(f"idle_conns: after {len(held)} connections: {e}", file=sys.stderr)
        return 1
    if stop:
        return 1
    print(f"ready {len(held)}", flush=True)

    # Hold them; a connection the server closes is a failure worth reporting.
    sel = selectors.DefaultSelector()
    for s in held:
        sel.register(s, selectors.EVENT_READ)
    closed = 0
    while not stop:
        for key, _ in sel.select(0.2):
            try:
                data = key.fileobj.recv(4096)
            except OSError:
                data = b""
            if not data:
                sel.unregister(key.fileobj)
                closed += 1
    if closed:
        print(f"idle_conns: the server closed {closed} of {len(held)} idle connections",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
