#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""
sluice integration tests: a small runner and the harness the tests share.

    python3 tests/integration/run.py --build BUILD_DIR [--filter SUBSTR] [-v]

Every test_* function of the test_*.py modules next to this file is run
with a fresh `Ctx` (its own temp dir, mockllm and sluiced processes, all
cleaned up afterwards, also on failure or ^C).  The last line printed is
"integration: N passed, M failed"; the exit status is 1 if any failed.

With a sanitizer build (BUILD_DIR ending in -san) every sluiced is stopped
with SIGTERM at the end of its test and its stderr is checked for
AddressSanitizer, UndefinedBehaviorSanitizer and LeakSanitizer reports.
"""
import argparse
import atexit
import base64
import contextlib
import ctypes
import http.client
import importlib
import json
import os
import re
import resource
import shutil
import signal
import signal as _signal_mod
import socket
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

BUILD = None            # absolute build dir, set by main()
SAN = False
SAN_PATTERNS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer")
VERBOSE = False

# Every process any test started, so atexit / ^C can always kill them.
_LIVE_PROCS = set()
_LIVE_DIRS = set()
# Contexts whose cleanups (namespaces, pins, cgroups) have not run yet.
_LIVE_CTXS = set()


class TestFailure(AssertionError):
    pass


def fail(msg):
    raise TestFailure(msg)


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def eq(got, want, what="value"):
    if got != want:
        g, w = repr(got), repr(want)
        if len(g) > 600:
            g = g[:600] + "...(%d chars)" % len(g)
        if len(w) > 600:
            w = w[:600] + "...(%d chars)" % len(w)
        raise TestFailure("%s: got %s, want %s" % (what, g, w))


def wait_until(pred, timeout, what, interval=0.02):
    """Poll pred() until it returns a truthy value; fail after timeout s."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = pred()
        except Exception as e:  # noqa: BLE001 - a probe may fail while starting
            last = e
            if isinstance(e, TestFailure):
                raise
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            fail("timed out after %.1fs waiting for %s (last: %r)" % (timeout, what, last))
        time.sleep(interval)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _kill_all():
    for p in list(_LIVE_PROCS):
        try:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=5)
        except Exception:  # noqa: BLE001
            pass
        _LIVE_PROCS.discard(p)
    for ctx in list(_LIVE_CTXS):
        ctx.run_cleanups()
    for d in list(_LIVE_DIRS):
        shutil.rmtree(d, ignore_errors=True)
        _LIVE_DIRS.discard(d)


atexit.register(_kill_all)


def _on_sigterm(signum, frame):
    _kill_all()
    sys.exit(130)


# ---------------------------------------------------------------- network namespaces

CLONE_NEWNET = 0x40000000
_libc = None


def netns_argv(netns):
    """The argv prefix that runs a command in network namespace netns.

    nsenter, not `ip netns exec`: the latter also unshares the mount
    namespace and remounts /sys, which hides /sys/fs/bpf and the cgroup2
    mount from the command (sluiced would pin into a private bpffs)."""
    return ["nsenter", "--net=/run/netns/%s" % netns] if netns else []


@contextlib.contextmanager
def in_netns(netns):
    """Run the body with this thread in network namespace netns (None: stay).
    Sockets created inside keep that namespace after the body ends."""
    global _libc
    if not netns:
        yield
        return
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open("/run/netns/%s" % netns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if _libc.setns(target, CLONE_NEWNET) != 0:
                e = ctypes.get_errno()
                raise OSError(e, "setns(%s): %s" % (netns, os.strerror(e)))
        finally:
            os.close(target)
        try:
            yield
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:
                # Never carry on in the wrong namespace.
                sys.stderr.write("cannot return to the test's network namespace\n")
                os._exit(3)
    finally:
        os.close(own)


# ---------------------------------------------------------------- npm

def npm_install(folder, marker, timeout=300):
    """`npm install` in folder (tests/sdk, tests/deploy) unless marker (a path
    under its node_modules) is there already; returns node's path.  Missing
    node/npm or a failed install is a failure, not a skip."""
    node, npm = shutil.which("node"), shutil.which("npm")
    check(node and npm, "node and npm are required (node=%r npm=%r)" % (node, npm))
    if os.path.exists(os.path.join(folder, "node_modules", marker)):
        return node
    try:
        p = subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=folder,
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        fail("npm install in %s timed out" % folder)
    check(p.returncode == 0, "npm install in %s failed (%d):\n%s"
          % (folder, p.returncode, (p.stdout + p.stderr)[-2000:]))
    check(os.path.exists(os.path.join(folder, "node_modules", marker)),
          "npm install in %s did not install %s" % (folder, marker))
    return node


# ---------------------------------------------------------------- processes

class Proc:
    """A child process whose stderr goes to a file we can read."""

    def __init__(self, name, argv, tmpdir, env=None, netns=None):
        self.name = name
        self.netns = netns
        argv = netns_argv(netns) + list(argv)
        self.argv = argv
        self.stderr_path = os.path.join(tmpdir, "%s.%d.stderr" % (name, id(self)))
        self.stdout_path = os.path.join(tmpdir, "%s.%d.stdout" % (name, id(self)))
        full_env = dict(os.environ)
        if SAN:
            full_env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0"
            full_env["UBSAN_OPTIONS"] = "print_stacktrace=1"
        if env:
            full_env.update(env)
        self._err = open(self.stderr_path, "wb")
        self._out = open(self.stdout_path, "wb")
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._out,
                                  stderr=self._err, env=full_env, cwd=ROOT)
        _LIVE_PROCS.add(self.p)
        self.rc = None

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stdout(self):
        with open(self.stdout_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_stderr(self, regex, timeout, what):
        rx = re.compile(regex)

        def probe():
            m = rx.search(self.stderr())
            if m:
                return m
            if not self.alive():
                fail("%s exited (rc %s) before %s; stderr:\n%s"
                     % (self.name, self.p.returncode, what, self.stderr()[-2000:]))
            return None
        return wait_until(probe, timeout, what)

    def signal(self, sig):
        if self.alive():
            self.p.send_signal(sig)

    def wait(self, timeout):
        try:
            self.rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.rc

    def stop(self, sig=_signal_mod.SIGTERM, timeout=10.0):
        """Signal, wait (bounded), kill if it hangs.  Returns (rc, hung)."""
        hung = False
        if self.alive():
            self.p.send_signal(sig)
            if self.wait(timeout) is None:
                hung = True
                self.p.kill()
                self.wait(5)
        self.rc = self.p.returncode
        _LIVE_PROCS.discard(self.p)
        self._err.close()
        self._out.close()
        return self.rc, hung

    def san_report(self):
        text = self.stderr()
        for pat in SAN_PATTERNS:
            i = text.find(pat)
            if i >= 0:
                return text[max(0, i - 200):i + 3000]
        return None


class Mock(Proc):
    def __init__(self, ctx, args=(), netns=None):
        argv = [os.path.join(BUILD, "mockllm"), "--listen", "127.0.0.1:0"] + list(args)
        super().__init__("mockllm", argv, ctx.dir, netns=netns)
        m = self.wait_stderr(r"mockllm: listening on [0-9.]+:(\d+)", 10, "mockllm to listen")
        self.port = int(m.group(1))
        self.url = "http://127.0.0.1:%d/v1" % self.port

    def stats(self):
        st, _, body = http_request(self.port, "GET", "/mock/stats", netns=self.netns)
        eq(st, 200, "mockllm /mock/stats status")
        return json.loads(body)


class Redis(Proc):
    """A real redis-server on a free loopback port, without persistence.
    stop() and start() again keep the port, to test an outage."""

    def __init__(self, ctx, port=None):
        self.ctx = ctx
        self.port = port or free_port()
        self.url = "redis://127.0.0.1:%d" % self.port
        self.workdir = os.path.join(ctx.dir, "redis.%d" % self.port)
        os.makedirs(self.workdir, exist_ok=True)
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", self.workdir,
                "--logfile", ""]
        super().__init__("redis", argv, ctx.dir)
        wait_until(self.ping, 10, "redis-server on port %d" % self.port)

    def command(self, *args, timeout=2):
        """One command in RESP; the reply decoded loosely (ints, bulk, simple)."""
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(out)
            f = s.makefile("rb")
            return self._reply(f)

    def _reply(self, f):
        line = f.readline().rstrip(b"\r\n")
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else f.read(n + 2)[:-2].decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply(f) for _ in range(n)]
        raise RuntimeError("bad redis reply %r" % line)

    def ping(self):
        try:
            return self.command("PING", timeout=0.5) == "PONG"
        except OSError:
            if not self.alive():
                fail("redis-server exited; stderr:\n%s" % self.stderr()[-1000:])
            return False


def yaml_str(s):
    return json.dumps(s)


class Gateway(Proc):
    def __init__(self, ctx, backends, env=None, access_log=True, kernel=None, extra_yaml="",
                 argv_extra=(), netns=None, host="127.0.0.1", expect_ready=True, tls=None,
                 admin=True, admin_token=None, **opts):
        self.tls = tls   # ssl.SSLContext of a client, when the listener speaks TLS
        # netns: run sluiced in that network namespace, listening on host
        # (an address of the namespace); every check below goes there too.
        self.port = free_port()
        self.host = host
        # admin: an admin listener (plain HTTP, on host) serves /metrics;
        # admin=False leaves the section out (a test may write its own).
        self.admin_port = free_port() if admin else None
        self.admin_token = admin_token
        self.access_log_path = os.path.join(ctx.dir, "access.%d.log" % len(ctx.procs)) \
            if access_log else None
        # An IPv6 host ("::1") is bracketed in the config, bare for clients.
        self.listen_host = "[%s]" % host if ":" in host else host
        cfg = {
            "listen": "%s:%d" % (self.listen_host, self.port),
            "workers": 2,
            "log_level": "info",
            "access_log": self.access_log_path or "-",
        }
        limits = {}
        timeouts = {"client_header": "2s", "client_body": "5s", "keepalive": "10s",
                    "upstream_connect": "2s", "upstream_first_byte": "10s",
                    "upstream_idle": "10s", "drain": "5s"}
        for k, v in opts.items():
            if k in ("max_body_bytes", "max_header_bytes", "max_connections",
                     "max_sse_line_bytes", "max_sse_event_bytes", "max_stream_bytes"):
                limits[k] = v
            elif k in timeouts or k == "stage":
                timeouts[k] = v
            else:
                cfg[k] = v
        lines = []
        for k, v in cfg.items():
            lines.append("%s: %s" % (k, yaml_str(v) if isinstance(v, str) else v))
        if limits:
            lines.append("limits:")
            for k, v in limits.items():
                lines.append("  %s: %s" % (k, v))
        lines.append("timeouts:")
        for k, v in timeouts.items():
            lines.append("  %s: %s" % (k, v))
        # The kernel half is off unless a test asks for it (with its own pin
        # root and cgroup): tests never touch the machine's default pins.
        lines.append("kernel:")
        lines.extend("  " + l for l in (kernel or "enabled: false").splitlines())
        if self.admin_port:
            lines.append("admin:")
            lines.append("  listen: %s" % yaml_str("%s:%d" % (self.listen_host, self.admin_port)))
            if admin_token:
                lines.append("  token: %s" % yaml_str(admin_token))
        if extra_yaml:
            lines.extend(extra_yaml.rstrip("\n").splitlines())
        lines.append("backends:")
        for b in backends:
            lines.append("  - name: %s" % b["name"])
            lines.append("    url: %s" % yaml_str(b["url"]))
            if "api_key" in b:
                lines.append("    api_key: %s" % yaml_str(b["api_key"]))
            lines.append("    models: [%s]" % ", ".join(yaml_str(m) for m in b["models"]))
            for extra in ("max_idle_connections", "idle_timeout", "ca_file", "tls_verify",
                          "health_check", "breaker"):
                if extra in b:
                    v = b[extra]
                    if isinstance(v, dict):  # a flow mapping: {path: "/x", interval: 1s}
                        v = "{%s}" % ", ".join("%s: %s" % (k, json.dumps(x) if isinstance(x, str)
                                                           else x) for k, x in v.items())
                    lines.append("    %s: %s" % (extra, v))
        self.config_text = "\n".join(lines) + "\n"
        self.config_path = os.path.join(ctx.dir, "sluice.%d.yaml" % len(ctx.procs))
        with open(self.config_path, "w") as f:
            f.write(self.config_text)
        self.drain_s = parse_duration(timeouts["drain"])
        argv = [os.path.join(BUILD, "sluiced"), "-c", self.config_path] + list(argv_extra)
        super().__init__("sluiced", argv, ctx.dir, env=env, netns=netns)
        if not expect_ready:
            return
        self.wait_stderr(r"listening on", 10, "sluiced to print 'listening on'")

        def ready():
            try:
                st, _, body = http_request(self.port, "GET", "/readyz", timeout=1,
                                           host=self.host, netns=self.netns, tls=self.tls)
                # Serving, though a route's backends may already be down
                # by their health checks (tests of that start so).
                return st == 200 or (st == 503 and b"no_healthy_target" in body)
            except OSError:
                if not self.alive():
                    fail("sluiced exited (rc %s); stderr:\n%s"
                         % (self.p.returncode, self.stderr()[-2000:]))
                return False
        wait_until(ready, 10, "sluiced /readyz")

    def access_log(self):
        if not self.access_log_path or not os.path.exists(self.access_log_path):
            return []
        out = []
        with open(self.access_log_path) as f:
            for line in f:
                line = line.strip()
                if line:
                    out.append(json.loads(line))
        return out

    def wait_access_log(self, n, timeout=3, path=None):
        """The access log once it has n lines (n lines for `path`, when
        given: readiness probes and scrapes are logged too, by any worker)."""
        def lines():
            log = self.access_log()
            mine = [r for r in log if path is None or r.get("path") == path]
            return log if len(mine) >= n else None
        return wait_until(lines, timeout, "%d access log lines%s"
                          % (n, " for " + path if path else ""))

    def admin_request(self, method, path, token=None, **kw):
        """A request to the admin listener, with the admin token (or the
        given one; "" sends none)."""
        token = self.admin_token if token is None else token
        headers = dict(kw.pop("headers", None) or {})
        if token:
            headers["Authorization"] = "Bearer " + token
        return http_request(self.admin_port, method, path, headers=headers, host=self.host,
                            netns=self.netns, **kw)

    def metrics(self):
        check(self.admin_port, "this gateway has no admin listener: no /metrics")
        st, _, body = self.admin_request("GET", "/metrics")
        eq(st, 200, "/metrics status")
        return body.decode()

    def assert_alive(self):
        check(self.alive(), "sluiced died (rc %s); stderr:\n%s"
              % (self.p.returncode, self.stderr()[-3000:]))
        st, _, body = http_request(self.port, "GET", "/healthz", timeout=5, host=self.host,
                                   netns=self.netns, tls=self.tls)
        eq(st, 200, "/healthz after the test")


def parse_duration(s):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", str(s))
    n = int(m.group(1))
    return n / 1000.0 if m.group(2) in (None, "ms") else n * {"s": 1, "m": 60, "h": 3600}[m.group(2)]


class Ctx:
    """Per-test resources: a temp dir and the processes started in it."""

    def __init__(self, name):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="sluice-it-")
        _LIVE_DIRS.add(self.dir)
        self.procs = []
        self.cleanups = []
        _LIVE_CTXS.add(self)

    def on_cleanup(self, fn):
        """Run fn when the test ends, after its processes are stopped
        (also when the runner is interrupted)."""
        self.cleanups.append(fn)

    def run_cleanups(self):
        """The on_cleanup functions, last registered first, each once."""
        problems = []
        _LIVE_CTXS.discard(self)
        while self.cleanups:
            fn = self.cleanups.pop()
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - report, keep cleaning
                problems.append("cleanup %r failed: %s" % (fn, e))
        return problems

    def mock(self, *args, netns=None):
        m = Mock(self, args, netns=netns)
        self.procs.append(m)
        return m

    def redis(self, port=None):
        r = Redis(self, port)
        self.procs.append(r)
        return r

    def gateway(self, backends=None, mock=None, **opts):
        """Start sluiced; backends default to one backend "mock" serving
        mock-small, mock-large and mock-embed on `mock`."""
        if backends is None:
            backends = [{"name": "mock", "url": mock.url,
                         "models": ["mock-small", "mock-large", "mock-embed"]}]
        g = Gateway(self, backends, **opts)
        self.procs.append(g)
        return g

    def cleanup(self):
        """Stop everything; returns a list of problems found (sanitizers,
        hangs on SIGTERM)."""
        problems = []
        # sluiced first, so its in-flight upstream requests end cleanly.
        order = [p for p in self.procs if p.name == "sluiced"] + \
                [p for p in self.procs if p.name != "sluiced"]
        for p in order:
            if not p.alive():
                rc, _ = p.stop()  # closes files
                if p.name == "sluiced" and rc != 0 and not getattr(p, "expect_exit", False):
                    problems.append("sluiced died during the test (exit status %s); "
                                    "stderr tail:\n%s" % (rc, p.stderr()[-1500:]))
            else:
                timeout = (getattr(p, "drain_s", 0) or 0) + 10
                rc, hung = p.stop(signal.SIGTERM, timeout)
                if hung:
                    problems.append("%s (pid %d) did not exit within %.0fs of SIGTERM"
                                    % (p.name, p.pid, timeout))
                elif p.name == "sluiced" and rc != 0:
                    problems.append("sluiced exited %s after SIGTERM; stderr tail:\n%s"
                                    % (rc, p.stderr()[-2000:]))
            if SAN:
                rep = p.san_report()
                if rep:
                    problems.append("%s sanitizer report:\n%s" % (p.name, rep))
        problems.extend(self.run_cleanups())
        shutil.rmtree(self.dir, ignore_errors=True)
        _LIVE_DIRS.discard(self.dir)
        return problems


# ---------------------------------------------------------------- HTTP helpers

def http_request(port, method, path, body=None, headers=None, timeout=10, host="127.0.0.1",
                 netns=None, source=None, tls=None):
    """One request on a new connection: (status, headers dict lowercased, body).
    netns: connect from that network namespace; source: bind to that address;
    tls: an ssl.SSLContext to speak https."""
    src = (source, 0) if source else None
    with in_netns(netns):
        if tls is not None:
            conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=tls,
                                               source_address=src)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout, source_address=src)
        conn.connect()
    try:
        h = {}
        if body is not None and not isinstance(body, (bytes, bytearray)):
            body = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        conn.close()


def post(port, path, body, headers=None, timeout=10):
    return http_request(port, "POST", path, body, headers, timeout)


def assert_openai_error(status, body, want_status, want_type=None, want_code=None, what=""):
    eq(status, want_status, "%s status (body %r)" % (what, body[:300]))
    try:
        doc = json.loads(body)
    except ValueError:
        fail("%s: error body is not JSON: %r" % (what, body[:300]))
    check(isinstance(doc, dict) and isinstance(doc.get("error"), dict),
          "%s: body has no error object: %r" % (what, doc))
    err = doc["error"]
    for k in ("message", "type", "code"):
        check(k in err, "%s: error has no %r: %r" % (what, k, err))
    check(isinstance(err["message"], str) and err["message"],
          "%s: empty error message: %r" % (what, err))
    if want_type is not None:
        eq(err["type"], want_type, "%s error.type" % what)
    if want_code is not None:
        if isinstance(want_code, (tuple, list, set)):
            check(err["code"] in want_code, "%s error.code: got %r, want one of %r"
                  % (what, err["code"], want_code))
        else:
            eq(err["code"], want_code, "%s error.code" % what)
    return err


class RawResponse:
    def __init__(self):
        self.status = None
        self.reason = None
        self.version = None
        self.headers = []       # [(name, value)] as received
        self.body = b""         # de-chunked
        self.chunks = []        # [(arrival monotonic time, bytes)] for chunked bodies
        self.complete = False   # body framing reached its end
        self.t_head = None

    def header(self, name):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None


class RawConn:
    """A client socket with byte-level control and bounded reads."""

    def __init__(self, port, timeout=10, host="127.0.0.1", tls=None):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname="localhost")
        self.timeout = timeout
        self.buf = b""
        self.eof = False
        self.arrivals = []      # [(t, offset in the total stream after this read)]
        self.total = 0

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _fill(self, deadline):
        if self.eof:
            raise EOFError("connection closed by peer")
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("read timed out")
        self.sock.settimeout(left)
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("read timed out")
        now = time.monotonic()
        if not d:
            self.eof = True
            raise EOFError("connection closed by peer")
        self.buf += d
        self.total += len(d)
        self.arrivals.append((now, self.total))
        return now

    def _read_until(self, marker, deadline):
        t = time.monotonic()
        while marker not in self.buf:
            t = self._fill(deadline)
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out, t

    def _read_exact(self, n, deadline):
        t = time.monotonic()
        while len(self.buf) < n:
            t = self._fill(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out, t

    def read_head(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        head, t = self._read_until(b"\r\n\r\n", deadline)
        r = RawResponse()
        r.t_head = t
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        r.version = parts[0]
        r.status = int(parts[1])
        r.reason = parts[2] if len(parts) > 2 else ""
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                r.headers.append((k.strip(), v.strip()))
        return r

    def read_response(self, timeout=None, head_only=False, on_chunk=None, skip_1xx=True):
        """Read one response; for chunked bodies, record each chunk's
        arrival time.  on_chunk(resp, data) may return False to stop early."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            r = self.read_head(deadline - time.monotonic())
            if not (skip_1xx and 100 <= r.status < 200):
                break
        if head_only:
            return r
        te = (r.header("transfer-encoding") or "").lower()
        cl = r.header("content-length")
        if "chunked" in te:
            body = []
            while True:
                line, t = self._read_until(b"\r\n", deadline)
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    # trailers until the blank line
                    while True:
                        tl, _ = self._read_until(b"\r\n", deadline)
                        if tl == b"\r\n":
                            break
                    r.complete = True
                    break
                data, t = self._read_exact(size + 2, deadline)
                check(data[-2:] == b"\r\n", "chunk not followed by CRLF: %r" % data[-10:])
                data = data[:-2]
                r.chunks.append((t, data))
                body.append(data)
                if on_chunk and on_chunk(r, data) is False:
                    break
            r.body = b"".join(body)
        elif cl is not None:
            r.body, _ = self._read_exact(int(cl), deadline)
            r.complete = True
        elif r.status in (204, 304) or 100 <= r.status < 200:
            r.complete = True
        else:
            # until close
            try:
                while True:
                    self._fill(deadline)
            except EOFError:
                pass
            r.body, self.buf = self.buf, b""
            r.complete = True
        return r

    def wait_closed(self, timeout=3):
        """True when the peer closes (EOF or reset) within timeout, with
        any bytes that arrived before it discarded."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._fill(deadline)
        except EOFError:
            return True
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False


def build_request(method, path, body=b"", headers=None, version="HTTP/1.1", host="sluice"):
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    lines = ["%s %s %s" % (method, path, version), "Host: %s" % host]
    hdrs = dict(headers or {})
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k in hdrs):
        hdrs["Content-Length"] = str(len(body))
    if body and not any(k.lower() == "content-type" for k in hdrs):
        hdrs["Content-Type"] = "application/json"
    for k, v in hdrs.items():
        lines.append("%s: %s" % (k, v))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def sse_events(body):
    """Split an SSE body into its events (each with its trailing blank line)."""
    if isinstance(body, bytes):
        body = body.decode()
    events = []
    for part in body.split("\n\n"):
        if part.strip():
            events.append(part + "\n\n")
    return events


def sse_data(event):
    for line in event.split("\n"):
        if line.startswith("data:"):
            return line[5:].strip()
    return None


def chat_body(prompt="hello world", model="mock-small", **kw):
    b = {"model": model, "messages": [{"role": "user", "content": prompt}]}
    b.update(kw)
    return b


def stream_direct(port, body, headers=None, tls=None):
    """A streaming request straight to a server: the de-chunked body."""
    c = RawConn(port, tls=tls)
    try:
        c.send(build_request("POST", "/v1/chat/completions" if "messages" in body
                             else "/v1/completions", body, headers))
        r = c.read_response()
        eq(r.status, 200, "stream status")
        check(r.complete, "stream did not end")
        return r
    finally:
        c.close()


# ---------------------------------------------------------------- runner

def discover(filter_):
    mods = sorted(f[:-3] for f in os.listdir(HERE)
                  if f.startswith("test_") and f.endswith(".py"))
    tests = []
    for m in mods:
        mod = importlib.import_module(m)
        for name, fn in vars(mod).items():
            if name.startswith("test_") and callable(fn) and \
                    getattr(fn, "__module__", None) == mod.__name__:
                full = "%s.%s" % (m, name)
                if filter_ and filter_ not in full:
                    continue
                tests.append((full, fn, fn.__code__.co_firstlineno))
    # definition order within a module
    tests.sort(key=lambda t: (t[0].split(".")[0], t[2]))
    return [(n, f) for n, f, _ in tests]


def run_one(name, fn):
    ctx = Ctx(name)
    t0 = time.monotonic()
    err = None
    try:
        fn(ctx)
    except KeyboardInterrupt:
        ctx.cleanup()
        raise
    except TestFailure as e:
        err = str(e)
    except Exception as e:  # noqa: BLE001
        err = "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc() if VERBOSE else
                              "".join(traceback.format_exc().splitlines(True)[-4:]))
    try:
        problems = ctx.cleanup()
    except Exception as e:  # noqa: BLE001
        problems = ["cleanup failed: %s: %s" % (type(e).__name__, e)]
    if problems:
        err = (err + "\n" if err else "") + "\n".join(problems)
    return err, time.monotonic() - t0


def main():
    global BUILD, SAN, VERBOSE
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--filter", default=None)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    BUILD = os.path.abspath(os.path.join(ROOT, args.build) if not os.path.isabs(args.build)
                            else args.build)
    SAN = os.path.basename(BUILD.rstrip("/")).endswith("-san")
    VERBOSE = args.verbose
    signal.signal(signal.SIGTERM, _on_sigterm)
    # 1000 concurrent sockets: raise the limit for us and the children.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    sys.path.insert(0, HERE)
    sys.modules.setdefault("run", sys.modules[__name__])

    missing = [b for b in ("sluiced", "mockllm") if not os.access(os.path.join(BUILD, b), os.X_OK)]
    tests = discover(args.filter)
    passed = failed = 0
    t_all = time.monotonic()
    try:
        for name, fn in tests:
            if missing:
                err, dt = "missing binaries in %s: %s" % (BUILD, ", ".join(missing)), 0.0
            else:
                err, dt = run_one(name, fn)
            if err:
                failed += 1
                print("FAIL %s (%.2fs): %s" % (name, dt, err.rstrip()), flush=True)
            else:
                passed += 1
                print("ok   %s (%.2fs)" % (name, dt), flush=True)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        failed += 1
    finally:
        _kill_all()
    print("total time %.1fs" % (time.monotonic() - t_all))
    print("integration: %d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(1 if failed or not passed else 0)


if __name__ == "__main__":
    main()
