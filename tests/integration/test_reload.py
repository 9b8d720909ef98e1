# SPDX-License-Identifier: Apache-2.0
"""Full hot reload (issue 11 section 5): backends, routes and weights from
the file while clients stream; requests in flight finish on their old
snapshot; a bad file keeps the running config; what needs a restart is
said."""
import json
import os
import re
import subprocess
import threading
import time

from run import (BUILD, RawConn, build_request, chat_body, check, eq, post, sse_data,
                 sse_events, wait_until)
from test_routes import _content

CHAT = "/v1/chat/completions"


def _rewrite(gw, backends, routes):
    """The gateway's file with other backends and routes sections."""
    text = gw.config_text.split("backends:\n")[0]
    text = re.sub(r"(?ms)^routes:\n(  .*\n)*", "", text)
    lines = [text.rstrip("\n"), "routes:", "  - model: chat-default", "    targets:"]
    for b, w in routes:
        lines.append('      - {backend: %s, model: "mock-small", weight: %d}' % (b, w))
    lines.append("backends:")
    for name, mock in backends:
        lines += ["  - name: %s" % name, '    url: "%s"' % mock.url,
                  '    models: ["mock-small"]']
    with open(gw.config_path, "w") as f:
        f.write("\n".join(lines) + "\n")


def _routes_yaml(routes):
    return "routes:\n  - model: chat-default\n    targets:\n" + "".join(
        '      - {backend: %s, model: "mock-small", weight: %d}\n' % r for r in routes)


def _reload(gw):
    st, _, body = gw.admin_request("POST", "/admin/reload?wait=1", body=b"", timeout=15)
    return st, json.loads(body)


def _stream(port, prompt, headers=None):
    """A streaming chat through the gateway: (status, events, complete)."""
    c = RawConn(port)
    try:
        c.send(build_request("POST", CHAT, chat_body(prompt, model="chat-default", stream=True),
                             headers))
        r = c.read_response(timeout=20)
        return r.status, sse_events(r.body), r.complete
    finally:
        c.close()


def test_reload_under_load(t):
    a, b, c = t.mock(), t.mock(), t.mock()
    gw = t.gateway(backends=[{"name": "a", "url": a.url, "models": ["mock-small"]},
                             {"name": "b", "url": b.url, "models": ["mock-small"]}],
                   mock=a, extra_yaml=_routes_yaml([("a", 1), ("b", 1)]))
    # What each prompt must produce, byte for byte (every mock answers the same).
    prompts = ["reload load %d" % i for i in range(6)]
    want = {}
    for p in prompts:
        st, _, body = post(gw.port, CHAT, chat_body(p, model="chat-default"))
        eq(st, 200, "warm-up")
        want[p] = json.loads(body)["choices"][0]["message"]["content"]
    stop = threading.Event()
    results = {"ok": 0, "bad": []}
    lock = threading.Lock()

    def client(i):
        n = 0
        while not stop.is_set():
            p = prompts[(i + n) % len(prompts)]
            n += 1
            try:
                if n % 2:
                    st, evs, complete = _stream(gw.port, p, {"x-mock-tps": "400"})
                    text, err = _content(evs)
                    good = (st == 200 and complete and not err and evs and
                            sse_data(evs[-1]) == "[DONE]" and text == want[p])
                    what = (st, complete, err, text[:40])
                else:
                    st, _, body = post(gw.port, CHAT, chat_body(p, model="chat-default"),
                                       timeout=20)
                    good = st == 200 and json.loads(body)["choices"][0]["message"][
                        "content"] == want[p]
                    what = (st, body[:200])
            except Exception as e:  # noqa: BLE001 - every failure counts
                good, what = False, repr(e)
            with lock:
                if good:
                    results["ok"] += 1
                else:
                    results["bad"].append(what)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    plans = [
        ([("a", a), ("b", b)], [("a", 3), ("b", 1)]),
        ([("a", a), ("b", b), ("c", c)], [("a", 1), ("b", 1), ("c", 1)]),
        ([("a", a), ("c", c)], [("a", 1), ("c", 2)]),
        ([("c", c)], [("c", 1)]),
        ([("b", b), ("c", c)], [("b", 1), ("c", 1)]),
        ([("a", b), ("c", c)], [("a", 1), ("c", 1)]),   # a's URL changes
        ([("a", a), ("b", b), ("c", c)], [("a", 1), ("b", 0), ("c", 1)]),
        ([("b", b)], [("b", 1)]),
        ([("a", a), ("b", b)], [("a", 5), ("b", 1)]),
        ([("a", a), ("b", b), ("c", c)], [("a", 1), ("b", 1), ("c", 1)]),
    ]
    try:
        for backends, routes in plans:
            _rewrite(gw, backends, routes)
            st, body = _reload(gw)
            eq(st, 200, "reload answered: %r" % body)
            # New requests follow the file: only the backends routed now get more.
            for k in range(6):
                eq(post(gw.port, CHAT, chat_body("probe %d" % k, model="chat-default"))[0], 200,
                   "probe")
            time.sleep(0.2)     # let the clients run on this snapshot
            with lock:
                check(not results["bad"], "failures under reload: %r" % results["bad"][:5])
    finally:
        stop.set()
        for th in threads:
            th.join(30)
    eq(len(re.findall(r"reload: applied", gw.stderr())), 10, "reloads applied")
    check(results["ok"] > 50, "requests during the reloads: %d" % results["ok"])
    eq(results["bad"], [], "non-2xx or cut streams")
    # Old snapshots are freed by their last request, not kept until exit.
    wait_until(lambda: len(re.findall(r"released by its last request", gw.stderr())) >= 9, 5,
               "old snapshots released")
    print("reload under load: 10 reloads, %d requests, 0 non-2xx, 0 cut streams"
          % results["ok"])


def test_reload_routes_new_requests_to_an_added_backend(t):
    a, b = t.mock(), t.mock()
    gw = t.gateway(backends=[{"name": "a", "url": a.url, "models": ["mock-small"]}],
                   mock=a, extra_yaml=_routes_yaml([("a", 1)]))
    eq(post(gw.port, CHAT, chat_body("x", model="chat-default"))[0], 200, "before")
    _rewrite(gw, [("a", a), ("b", b)], [("b", 1)])
    st, body = _reload(gw)
    eq(st, 200, "reload")
    check("backends" in body["detail"] and "routes" in body["detail"],
          "the answer says what changed: %r" % body)
    before = a.stats()["requests"]
    for i in range(5):
        eq(post(gw.port, CHAT, chat_body("y %d" % i, model="chat-default"))[0], 200, "after")
    eq(b.stats()["requests"], 5, "the added backend serves the route")
    eq(a.stats()["requests"], before, "the old arm gets nothing new")


def test_inflight_stream_keeps_its_removed_backend(t):
    a, b = t.mock(), t.mock()
    gw = t.gateway(backends=[{"name": "a", "url": a.url, "models": ["mock-small"]},
                             {"name": "b", "url": b.url, "models": ["mock-small"]}],
                   mock=a, extra_yaml=_routes_yaml([("b", 1)]))
    out = {}

    def slow():
        out["r"] = _stream(gw.port, "keep me", {"x-mock-tps": "20", "x-mock-tokens": "30"})

    th = threading.Thread(target=slow)
    th.start()
    wait_until(lambda: b.stats()["requests"] >= 1, 5, "the stream to start on b")
    _rewrite(gw, [("a", a)], [("a", 1)])
    eq(_reload(gw)[0], 200, "reload removing b")
    eq(post(gw.port, CHAT, chat_body("new", model="chat-default"))[0], 200, "new request")
    eq(a.stats()["requests"], 1, "a new request goes to a")
    th.join(30)
    st, evs, complete = out["r"]
    text, err = _content(evs)
    check(st == 200 and complete and not err and sse_data(evs[-1]) == "[DONE]",
          "the stream in flight ended whole on b: %r %r" % (st, evs[-2:]))
    eq(len(text.split()), 30, "every token of the stream")
    eq(b.stats()["requests"], 1, "b served only the stream in flight")
    wait_until(lambda: "released by its last request" in gw.stderr(), 5,
               "the old snapshot freed after its stream")


def _sluicectl(gw):
    return subprocess.run([os.path.join(BUILD, "sluicectl"), "--admin",
                           "127.0.0.1:%d" % gw.admin_port, "reload"],
                          capture_output=True, text=True, timeout=30)


def test_bad_file_keeps_config_and_sluicectl_says_why(t):
    a = t.mock()
    gw = t.gateway(backends=[{"name": "a", "url": a.url, "models": ["mock-small"]}],
                   mock=a, extra_yaml=_routes_yaml([("a", 1)]))
    good = open(gw.config_path).read()
    bad = good.replace("routes:\n  - model: chat-default\n    targets:\n"
                       '      - {backend: a,', "routes:\n  - model: chat-default\n    targets:\n"
                       '      - {backend: nowhere,')
    check(bad != good, "the test broke the file")
    with open(gw.config_path, "w") as f:
        f.write(bad)
    r = _sluicectl(gw)
    eq(r.returncode, 1, "sluicectl reload of a bad file: %s %s" % (r.stdout, r.stderr))
    check(re.search(re.escape(gw.config_path) + r":\d+: .*backend", r.stderr),
          "sluicectl prints file:line: key: reason: %r" % r.stderr)
    check(re.search(r"kept the running config", gw.stderr()), "the log says it kept the config")
    eq(post(gw.port, CHAT, chat_body("still", model="chat-default"))[0], 200,
       "the old config keeps serving")
    with open(gw.config_path, "w") as f:
        f.write(good)
    r = _sluicectl(gw)
    eq(r.returncode, 0, "sluicectl reload of the good file: %s" % r.stderr)
    check(r.stdout.startswith("reloaded: generation 2"), "its outcome: %r" % r.stdout)


def test_listen_or_workers_change_says_restart(t):
    a = t.mock()
    gw = t.gateway(backends=[{"name": "a", "url": a.url, "models": ["mock-small"]}], mock=a)
    text = open(gw.config_path).read()
    text = text.replace("workers: 2", "workers: 3")
    text = text.replace("listen: \"127.0.0.1:%d\"" % gw.port, "listen: \"127.0.0.1:1\"", 1)
    with open(gw.config_path, "w") as f:
        f.write(text)
    r = _sluicectl(gw)
    eq(r.returncode, 0, "reload with listen/workers changed: %s" % r.stderr)
    check("needs a restart" in r.stdout and "listen" in r.stdout and "workers" in r.stdout,
          "sluicectl names what needs a restart: %r" % r.stdout)
    gw.wait_stderr(r"reload: changes to listen, workers need a restart", 5, "the log line")
    eq(post(gw.port, CHAT, chat_body("same port"))[0], 200, "still on the old port")


def test_tls_backend_connection_keeps_its_snapshot_context(t):
    """A TLS connection's session belongs to its snapshot's client context
    (TLS 1.3 tickets call back into it), so a reload closes idle TLS
    connections instead of carrying them over, and the old context lives
    until the last of them is gone (ASan: no use after free)."""
    from test_tls_upstream import _backend, _https
    mock = t.mock()
    ca, server = _backend(t, mock, min_version="1.3")
    gw = t.gateway(backends=[_https(server, ca, name="a")], workers=1,
                   extra_yaml=_routes_yaml([("a", 1)]))
    for i in range(3):
        eq(post(gw.port, CHAT, chat_body("tls %d" % i, model="chat-default"))[0], 200, "before")
    eq(server.accepted, 1, "one kept-alive TLS connection")
    out = {}
    th = threading.Thread(target=lambda: out.setdefault("r", _stream(
        gw.port, "tls stream", {"x-mock-tps": "40", "x-mock-tokens": "20"})))
    th.start()
    wait_until(lambda: server.accepted >= 1 and mock.stats()["requests"] >= 4, 5,
               "the stream to start")
    with open(gw.config_path) as f:
        text = f.read()
    with open(gw.config_path, "w") as f:
        f.write(text.replace("weight: 1}", "weight: 2}"))
    eq(_reload(gw)[0], 200, "reload")
    for i in range(3):
        eq(post(gw.port, CHAT, chat_body("tls after %d" % i, model="chat-default"))[0], 200,
           "after")
    th.join(30)
    st, evs, complete = out["r"]
    check(st == 200 and complete and sse_data(evs[-1]) == "[DONE]",
          "the TLS stream in flight ended whole")
    eq(len(_content(evs)[0].split()), 20, "every token over the old connection")
    check(server.accepted >= 2, "new requests use a new TLS connection: %d" % server.accepted)
    wait_until(lambda: "released by its last request" in gw.stderr(), 5,
               "the old snapshot (and its TLS context) freed")
