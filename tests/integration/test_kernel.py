# SPDX-License-Identifier: Apache-2.0
"""
The kernel half end to end: the real XDP, sockops and reuseport programs
loaded by sluiced in a network namespace, driven from a client namespace
over a veth pair (see netns.py).

Every sluiced here gets its own pin root and cgroup through the kernel:
section; namespaces, pins, cgroups and processes are removed when each test
ends, also on failure.
"""
import http.client
import json
import os
import re
import signal
import socket
import time

import run
from netns import Netns, kernel_dirs, sh
from run import chat_body, check, eq, fail, http_request, wait_until

CHAT = "/v1/chat/completions"


def _layout_version():
    with open(os.path.join(run.ROOT, "maps", "sluice_maps.h")) as f:
        return int(re.search(r"#define SLUICE_LAYOUT_VERSION\s+(\d+)", f.read()).group(1))


LAYOUT = _layout_version()
ANON, ACME, FLOOD = "10.199.0.2", "10.199.0.3", "10.199.0.4"


# ---------------------------------------------------------------- helpers

def kernel_yaml(pin, cg, xdp_if=None, mode="auto", rate=None, burst=None, deny=()):
    lines = ["enabled: true",
             "pin_root: %s" % json.dumps(pin),
             "cgroup: %s" % json.dumps(cg)]
    if xdp_if:
        lines += ["xdp:",
                  "  interfaces: [%s]" % json.dumps(xdp_if),
                  "  mode: %s" % mode]
    if rate is not None:
        lines += ["limits:",
                  "  source_conn_rate: %d" % rate,
                  "  source_conn_burst: %d" % (burst if burst is not None else rate)]
    if deny:
        lines.append("deny: [%s]" % ", ".join(json.dumps(d) for d in deny))
    return "\n".join(lines)


def tenant_yaml(name, networks, max_connections=None, workers=None):
    lines = ["tenants:",
             "  - name: %s" % name,
             "    networks: [%s]" % ", ".join(json.dumps(n) for n in networks)]
    if max_connections is not None:
        lines += ["    limits:", "      max_connections: %d" % max_connections]
    if workers:
        lines.append("    workers: %s" % workers)
    return "\n".join(lines)


class Env:
    """A gateway namespace with mockllm and sluiced, a client namespace."""

    def __init__(self, t, ns, pin, cg):
        self.t, self.ns, self.pin, self.cg = t, ns, pin, cg
        self.mock = None
        self.gw = None

    def start(self, xdp=True, rate=None, burst=None, deny=(), tenants="", workers=2,
              argv_extra=(), expect_ready=True):
        if self.mock is None:
            self.mock = self.t.mock(netns=self.ns.gw)
        k = kernel_yaml(self.pin, self.cg, self.ns.gw_if if xdp else None, rate=rate,
                        burst=burst, deny=deny)
        self.gw = self.t.gateway(mock=self.mock, netns=self.ns.gw, host=self.ns.gw_addr,
                                 kernel=k, extra_yaml=tenants, workers=workers,
                                 argv_extra=argv_extra, expect_ready=expect_ready)
        if expect_ready:
            # The kernel half is set up before "listening on"; XDP right after.
            self.gw.wait_stderr(r"kernel: maps under", 10, "the kernel summary line")
            check("kernel features off" not in self.gw.stderr(),
                  "kernel features are off:\n%s" % self.gw.stderr()[-2000:])
        return self.gw

    def stop(self):
        rc, hung = self.gw.stop(signal.SIGTERM, 15)
        check(not hung, "sluiced did not exit on SIGTERM")
        eq(rc, 0, "sluiced exit status after SIGTERM (stderr %s)" % self.gw.stderr()[-1500:])
        return rc

    def request(self, src, path=CHAT, timeout=5, body=None):
        """One request on a new connection from src in the client namespace."""
        if body is None and path == CHAT:
            body = chat_body("hi")
        method = "POST" if body is not None else "GET"
        return http_request(self.gw.port, method, path, body=body, timeout=timeout,
                            host=self.ns.gw_addr, netns=self.ns.cl, source=src)

    def ok(self, src, what):
        st, _, body = self.request(src)
        eq(st, 200, "%s: status (body %r)" % (what, body[:300]))

    def ctl(self, *args, check_rc=True):
        """sluicectl --json, in the gateway namespace (XDP queries are per
        namespace ifindex)."""
        r = sh([os.path.join(run.BUILD, "sluicectl"), "--pin-root", self.pin, "--json"]
               + list(args), check=check_rc, netns=self.ns.gw)
        return json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else r

    def counters(self):
        return self.ctl("counters")["counters"]

    def metric(self, name, labels):
        rx = re.compile(r"^%s\{%s\} (\d+)$" % (re.escape(name), re.escape(labels)), re.M)
        m = rx.search(self.gw.metrics())
        return int(m.group(1)) if m else None


def setup(t):
    ns = Netns(t)
    pin, cg = kernel_dirs(t)
    return Env(t, ns, pin, cg)


def connect_from(env, src, timeout):
    """A socket connected from src (client namespace) to the gateway."""
    with run.in_netns(env.ns.cl):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.bind((src, 0))
        s.connect((env.ns.gw_addr, env.gw.port))
        return s
    except BaseException:
        s.close()
        raise


def healthz_on(s, timeout=5):
    """GET /healthz on an open keep-alive socket: the status code."""
    s.settimeout(timeout)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: sluice\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        d = s.recv(4096)
        if not d:
            raise EOFError("closed: %r" % data)
        data += d
    head, _, rest = data.partition(b"\r\n\r\n")
    m = re.search(rb"content-length:\s*(\d+)", head, re.I)
    want = int(m.group(1)) if m else 0
    while len(rest) < want:
        d = s.recv(4096)
        if not d:
            break
        rest += d
    return int(head.split(b" ")[1]), rest


def pct(vals, p):
    v = sorted(vals)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def progs_by_name():
    """bpftool prog show -j: {name: [prog, ...]}."""
    r = sh(["bpftool", "prog", "show", "-j"])
    out = {}
    for p in json.loads(r.stdout):
        out.setdefault(p.get("name"), []).append(p)
    return out


def info(msg):
    print("info: %s" % msg, flush=True)


# ---------------------------------------------------------------- tests

def test_kernel_tenant_tag_and_metrics(t):
    env = setup(t)
    gw = env.start(tenants=tenant_yaml("acme", ["10.199.0.3/32"]))

    env.ok(ACME, "request from the acme network")
    env.ok(ANON, "request from an unknown source")
    log = gw.wait_access_log(2, path=CHAT)
    chats = [r for r in log if r.get("path") == CHAT]
    eq(len(chats), 2, "chat lines in the access log (%r)" % log)
    eq(chats[0].get("tenant"), "acme", "tenant of the request from %s" % ACME)
    eq(chats[1].get("tenant"), "anonymous", "tenant of the request from %s" % ANON)
    eq(env.metric("sluice_tenant_requests_total", 'tenant="acme"'), 1,
       "sluice_tenant_requests_total{tenant=\"acme\"}")
    check(env.metric("sluice_kernel_decisions_total", 'reason="xdp_syn_pass"') is not None,
          "/metrics has no sluice_kernel_decisions_total{reason=\"xdp_syn_pass\"}")

    st = env.ctl("status")
    xdp = st.get("xdp") or []
    check(any(x.get("ifname") == env.ns.gw_if and x.get("attached") is True
              and x.get("mode") in ("native", "generic") for x in xdp),
          "status: XDP not attached to %s: %r" % (env.ns.gw_if, xdp))
    check(st["sockops"]["attached"] is True, "status: sockops not attached: %r" % st["sockops"])
    eq(st["sockops"]["cgroup"], env.cg, "status: sockops cgroup")
    check(st["steering"]["attached"] is True, "status: steering not attached: %r"
          % st["steering"])
    eq(st["daemon"]["pid"], gw.pid, "status: daemon pid")
    info("xdp on %s: mode %s" % (env.ns.gw_if, [x.get("mode") for x in xdp]))

    c = env.counters()
    check(c["xdp_syn_pass"] >= 2, "counters: xdp_syn_pass %d, want >= 2 (%r)"
          % (c["xdp_syn_pass"], c))
    check(c["tenant_from_network"] >= 1, "counters: tenant_from_network %d, want >= 1"
          % c["tenant_from_network"])

    dump = sh(["bpftool", "map", "dump", "pinned", os.path.join(env.pin, "sluice_tenants")],
              timeout=30).stdout
    check("active_connections" in dump, "bpftool map dump shows no field names: %r"
          % dump[:400])

    # Ours, not another daemon's: each program uses this pin root's maps.
    cfg_map = json.loads(sh(["bpftool", "map", "show", "pinned",
                             os.path.join(env.pin, "sluice_config"), "-j"]).stdout)["id"]
    progs = progs_by_name()
    for name in ("sluice_xdp", "sluice_sockops", "sluice_steer"):
        mine = [p for p in progs.get(name, []) if cfg_map in p.get("map_ids", [])]
        check(mine, "bpftool prog show: no program %s using map %d (have %s)"
              % (name, cfg_map, sorted(n for n in progs if n and n.startswith("sluice"))))
        if name == "sluice_xdp":
            eq(xdp[0].get("prog_id"), mine[0]["id"], "status: XDP prog id")
    cgtree = sh(["bpftool", "cgroup", "show", env.cg]).stdout
    check("sluice_sockops" in cgtree, "bpftool cgroup show %s: no sockops:\n%s"
          % (env.cg, cgtree))
    with open(os.path.join(env.cg, "cgroup.procs")) as f:
        check(str(gw.pid) in f.read().split(), "sluiced is not in its cgroup %s" % env.cg)
    check("xdp" in env.ns.link_details(), "ip -d link: no xdp on %s while sluiced runs:\n%s"
          % (env.ns.gw_if, env.ns.link_details()))

    env.stop()
    details = env.ns.link_details()
    check("xdp" not in details, "XDP still attached to %s after SIGTERM:\n%s"
          % (env.ns.gw_if, details))
    for m in ("sluice_meta", "sluice_tenants", "sluice_counters", "sluice_deny"):
        check(os.path.exists(os.path.join(env.pin, m)), "pinned map %s gone after exit" % m)
    st = env.ctl("status")
    eq(st["daemon"]["pid"], 0, "status after exit: daemon pid")


def test_kernel_syn_flood_dropped_while_other_client_served(t):
    env = setup(t)
    env.start(rate=50, burst=50)

    def legit(n):
        lat = []
        for i in range(n):
            t0 = time.monotonic()
            st, _, body = env.request(ANON, timeout=10)
            lat.append((time.monotonic() - t0) * 1000)
            eq(st, 200, "legit request %d from %s (body %r)" % (i, ANON, body[:200]))
        return lat

    quiet = legit(20)
    c0 = env.counters()
    hp = run.Proc("hping3", ["timeout", "-s", "INT", "3", "hping3", "-S", "-p",
                             str(env.gw.port), "--flood", "-a", FLOOD, env.ns.gw_addr],
                  t.dir, netns=env.ns.cl)
    t.procs.append(hp)
    t0 = time.monotonic()
    time.sleep(0.3)     # the flood is on
    check(hp.alive(), "hping3 exited at once: %s" % hp.stderr()[-500:])
    loaded = legit(20)
    check(hp.wait(15) is not None, "hping3 did not stop")
    dt = time.monotonic() - t0
    c1 = env.counters()

    drops = c1["xdp_drop_source_rate"] - c0["xdp_drop_source_rate"]
    syns = drops + c1["xdp_syn_pass"] - c0["xdp_syn_pass"]
    check(drops > 1000, "xdp_drop_source_rate grew by %d during the flood, want > 1000 (%r)"
          % (drops, c1))
    out = hp.stdout() + hp.stderr()
    m = re.search(r"(\d+) packets transmitted", out)
    sent = int(m.group(1)) if m else None
    src = env.ctl("sources", "--top", "1000")
    row = [s for s in src["sources"] if s["source"].endswith(FLOOD)]
    check(row, "sluicectl sources: no bucket for %s: %r" % (FLOOD, src))
    check(row[0]["dropped"] > 0, "bucket of %s: dropped %r" % (FLOOD, row[0]))
    check(row[0]["passed"] <= 50 + 50 * dt + 10,
          "bucket of %s passed %d in %.1fs at rate 50 burst 50" % (FLOOD, row[0]["passed"], dt))
    legit_row = [s for s in src["sources"] if s["source"].endswith(ANON)]
    check(legit_row and legit_row[0]["dropped"] == 0,
          "the legit client's bucket dropped SYNs: %r" % legit_row)

    info("flood: hping3 sent %s SYNs in ~3s (%s/s); XDP saw %d SYNs in %.1fs = %.0f/s, "
         "dropped %d (xdp_drop_source_rate total %d); flood bucket %r"
         % (sent, "%.0f" % (sent / 3.0) if sent else "?", syns, dt, syns / dt, drops,
            c1["xdp_drop_source_rate"], row[0]))
    info("legit client latency ms: quiet p50 %.2f p99 %.2f; under flood p50 %.2f p99 %.2f"
         % (pct(quiet, 50), pct(quiet, 99), pct(loaded, 50), pct(loaded, 99)))
    env.gw.assert_alive()


def test_kernel_deny_list(t):
    env = setup(t)
    env.start()
    env.ok(FLOOD, "before deny")

    env.ctl("deny", "add", "10.199.0.4/32")
    lst = env.ctl("deny", "list")
    check("10.199.0.4" in json.dumps(lst), "deny list lacks 10.199.0.4: %r" % lst)
    check(refused(env), "a connection from %s got through the deny list" % FLOOD)
    check(env.counters()["xdp_drop_deny"] > 0, "xdp_drop_deny is 0")
    env.ok(ANON, "another source while %s is denied" % FLOOD)

    env.ctl("deny", "del", "10.199.0.4/32")
    env.ok(FLOOD, "after deny del")
    env.stop()

    # A kernel.deny entry blocks from the start (a fresh pin root).
    env2 = Env(t, env.ns, *kernel_dirs(t))
    env2.mock = env.mock
    env2.start(deny=["10.199.0.4/32"])
    check(refused(env2), "a connection from %s got through kernel.deny" % FLOOD)
    lst = env2.ctl("deny", "list")
    check("10.199.0.4" in json.dumps(lst), "deny list lacks the config entry: %r" % lst)
    check(env2.counters()["xdp_drop_deny"] > 0, "xdp_drop_deny is 0 with kernel.deny")
    env2.ok(ANON, "another source with kernel.deny")


def refused(env, src=FLOOD, timeout=1.0):
    """True when a request from src gets no answer (SYN dropped)."""
    try:
        env.request(src, timeout=timeout)
    except (OSError, http.client.HTTPException):
        return True
    return False


def tenant_row(env, tid):
    for row in env.ctl("tenants")["tenants"]:
        if row["id"] == tid:
            return row
    return None


def hold(env, held, n):
    """Open n keep-alive connections from the capped tenant, one /healthz each."""
    for i in range(n):
        s = connect_from(env, ACME, 5)
        held.append(s)
        st, _ = healthz_on(s)
        eq(st, 200, "held connection %d /healthz" % i)


def release(env, held):
    """Close the held connections; the tenant's count goes back to 0."""
    for s in held:
        s.close()
    held.clear()
    wait_until(lambda: tenant_row(env, 1)["active_connections"] == 0, 3,
               "active_connections of the capped tenant back to 0", interval=0.1)


def test_kernel_tenant_connection_cap(t):
    env = setup(t)
    tenants = tenant_yaml("capped", ["10.199.0.3/32"], max_connections=2)
    env.start(tenants=tenants)
    held = []
    t.on_cleanup(lambda: [s.close() for s in held])
    hold(env, held, 2)
    row = tenant_row(env, 1)
    eq((row["active_connections"], row["max_connections"]), (2, 2),
       "capped tenant: active connections and cap (%r)" % row)

    # With XDP the third SYN is dropped at the cap: the connect times out.
    # (Should it get through, sockops flags it and sluiced answers 503.)
    third = None
    try:
        s = connect_from(env, ACME, 1.5)
        held.append(s)
        st, body = healthz_on(s, 3)
        third = "status %d %r" % (st, body[:200])
        eq(st, 503, "third connection from %s: status (body %r)" % (ACME, body[:200]))
        check(b"too_many_connections" in body, "503 body: %r" % body[:300])
    except (socket.timeout, TimeoutError):
        third = "connect timed out"
    info("third connection from the capped tenant (XDP on): %s" % third)
    c = env.counters()
    check(c["xdp_drop_tenant_cap"] > 0 or c["sock_over_cap"] > 0,
          "no xdp_drop_tenant_cap / sock_over_cap count: %r" % c)

    env.ok(ANON, "another source while the tenant is at its cap")
    release(env, held)
    env.ok(ACME, "the tenant after closing its connections")
    env.stop()

    # Without XDP the SYN is accepted; sockops tags the socket over the
    # cap and sluiced answers 503 too_many_connections.
    env2 = Env(t, env.ns, *kernel_dirs(t))
    env2.mock = env.mock
    env2.start(xdp=False, tenants=tenants)
    hold(env2, held, 2)
    s = connect_from(env2, ACME, 5)
    held.append(s)
    try:
        st, body = healthz_on(s, 5)
    except (EOFError, ConnectionError) as e:
        fail("over-cap connection closed without a 503: %s" % e)
    eq(st, 503, "over-cap connection (sockops only): status (body %r)" % body[:200])
    check(b"too_many_connections" in body, "503 body: %r" % body[:300])
    check(env2.counters()["sock_over_cap"] > 0, "sock_over_cap is 0")
    env2.ok(ANON, "another source while the tenant is over its cap")
    release(env2, held)
    env2.ok(ACME, "the tenant after closing its connections (sockops only)")


def test_kernel_steering_dedicated_workers(t):
    env = setup(t)
    gw = env.start(workers=3, tenants=tenant_yaml("vip", ["10.199.0.3/32"],
                                                   workers="dedicated"))
    c0 = env.counters()
    for i in range(20):
        env.ok(ACME, "vip request %d" % i)
    for i in range(20):
        env.ok(ANON, "shared request %d" % i)
    log = [r for r in gw.wait_access_log(40, path=CHAT) if r.get("path") == CHAT]
    eq(len(log), 40, "chat lines in the access log")
    vip = [r["worker"] for r in log if r.get("tenant") == "vip"]
    anon = [r["worker"] for r in log if r.get("tenant") == "anonymous"]
    eq(len(vip), 20, "vip lines")
    eq(sorted(set(vip)), [2], "workers that served the dedicated tenant")
    check(2 not in anon, "the dedicated worker 2 served anonymous requests: %r" % anon)
    c = env.counters()
    check(c["steer_dedicated"] - c0["steer_dedicated"] >= 20,
          "steer_dedicated grew by %d, want >= 20" % (c["steer_dedicated"] - c0["steer_dedicated"]))
    info("shared workers used by anonymous: %s" % sorted(set(anon)))


def test_kernel_maps_survive_restart_and_layout_check(t):
    env = setup(t)
    tenants = tenant_yaml("acme", ["10.199.0.3/32"])
    env.start(tenants=tenants)
    env.ok(ACME, "first run, request 1")
    env.ok(ACME, "first run, request 2")
    eq(env.metric("sluice_tenant_requests_total", 'tenant="acme"'), 2, "acme requests, first run")
    env.stop()

    env.start(tenants=tenants)
    eq(env.metric("sluice_tenant_requests_total", 'tenant="acme"'), 2,
       "acme requests right after the restart")
    env.ok(ACME, "second run")
    eq(env.metric("sluice_tenant_requests_total", 'tenant="acme"'), 3,
       "acme requests after the restart")
    env.stop()

    # Another layout version in the meta map: refused without --reset-maps.
    meta = os.path.join(env.pin, "sluice_meta")
    r = sh(["bpftool", "map", "lookup", "pinned", meta, "key", "0", "0", "0", "0", "-j"])
    doc = json.loads(r.stdout)
    value = [int(b, 16) for b in doc["value"]]
    eq(int.from_bytes(bytes(value[:4]), "little"), LAYOUT, "layout_version in the meta map")
    value[:4] = list((LAYOUT + 98).to_bytes(4, "little"))
    sh(["bpftool", "map", "update", "pinned", meta, "key", "0", "0", "0", "0", "value", "hex"]
       + ["%02x" % b for b in value])

    gw = env.start(tenants=tenants, expect_ready=False)
    gw.expect_exit = True
    rc = gw.wait(15)
    eq(rc, 1, "sluiced exit status with maps of layout %d (stderr %s)"
       % (LAYOUT + 98, gw.stderr()[-1000:]))
    err = gw.stderr()
    check("layout version" in err and "--reset-maps" in err,
          "stderr does not name the layout version and --reset-maps:\n%s" % err[-1500:])

    env.start(tenants=tenants, argv_extra=["--reset-maps"])
    check(re.search(r"removing pinned maps", env.gw.stderr()),
          "no word of the removed maps:\n%s" % env.gw.stderr()[-1500:])
    eq(env.metric("sluice_tenant_requests_total", 'tenant="acme"'), 0,
       "acme requests after --reset-maps")
    env.ok(ACME, "after --reset-maps")
    st = env.ctl("status")
    eq(st["layout_version"], LAYOUT, "layout version after --reset-maps")


def test_kernel_off_without_privileges_or_disabled(t):
    mock = t.mock()
    gw = t.gateway(mock=mock)      # the harness default: kernel: {enabled: false}
    gw.wait_stderr(r"kernel features off", 5, "the kernel-off line")
    check(re.search(r"kernel features off.*disabled", gw.stderr()),
          "kernel-off line gives no reason:\n%s" % gw.stderr()[-1000:])
    st, _, body = run.post(gw.port, CHAT, chat_body("hi"))
    eq(st, 200, "request with the kernel half disabled (body %r)" % body[:200])
    gw.stop()

    # A pin root that is not on a BPF filesystem: the daemon serves anyway.
    pin = os.path.join(t.dir, "not-bpffs")
    _, cg = kernel_dirs(t)
    gw = t.gateway(mock=mock, kernel=kernel_yaml(pin, cg))
    err = gw.stderr()
    eq(len(re.findall(r"kernel features off", err)), 1,
       "'kernel features off' lines (stderr %s)" % err[-1500:])
    line = re.search(r".*kernel features off.*", err).group(0)
    check(re.search(r"kernel features off[^:]*: \S", line), "no reason given: %r" % line)
    info("kernel off line: %s" % line.strip())
    st, _, body = run.post(gw.port, CHAT, chat_body("hi"))
    eq(st, 200, "request with the kernel half off (body %r)" % body[:200])
    check(not os.path.isdir(cg) or not open(os.path.join(cg, "cgroup.procs")).read().strip(),
          "sluiced joined its cgroup although the kernel half is off")


def test_kernel_reload_updates_maps_without_dropping_connections(t):
    env = setup(t)
    gw = env.start()
    env.ok(FLOOD, "before the reload")
    held = connect_from(env, ACME, 5)
    t.on_cleanup(held.close)
    st, _ = healthz_on(held)
    eq(st, 200, "held keep-alive connection before the reload")

    # A tenant for ACME's network and a deny entry for FLOOD, by SIGHUP.
    text = gw.config_text.replace("kernel:\n", 'kernel:\n  deny: ["10.199.0.4/32"]\n', 1)
    text += tenant_yaml("acme", ["10.199.0.3/32"]) + "\n"
    with open(gw.config_path, "w") as f:
        f.write(text)
    gw.signal(signal.SIGHUP)
    gw.wait_stderr(r"reload: applied .*1 tenants, 1 deny entries \(kernel maps updated\)", 5,
                   "the reload to be applied")

    check(refused(env), "a connection from %s got through the reloaded deny list" % FLOOD)
    env.ok(ACME, "a new connection from the reloaded tenant network")
    log = gw.wait_access_log(2, path=CHAT)
    eq([r["tenant"] for r in log if r.get("path") == CHAT], ["anonymous", "acme"],
       "tenants of the chat requests before and after the reload")
    st, _ = healthz_on(held)
    eq(st, 200, "the keep-alive connection opened before the reload")

    # A broken file keeps what runs, and says where it is broken.
    with open(gw.config_path, "w") as f:
        f.write(text + "tenants: [\n")
    gw.signal(signal.SIGHUP)
    gw.wait_stderr(r"reload: %s:\d+: .*kept the running config" % re.escape(gw.config_path), 5,
                   "the bad reload to be refused")
    check(refused(env), "the deny entry is gone after a refused reload")

    # Back to the first file: the deny entry goes, FLOOD is served again.
    with open(gw.config_path, "w") as f:
        f.write(gw.config_text)
    gw.signal(signal.SIGHUP)
    gw.wait_stderr(r"reload: applied .*0 tenants, 0 deny entries", 5, "the second reload")
    env.ok(FLOOD, "after the deny entry was reloaded away")
    st, _ = healthz_on(held)
    eq(st, 200, "the keep-alive connection after two reloads")


def test_kernel_blocks_a_tenant_whose_budget_is_spent(t):
    """A tenant identified by API key (not by network) spends its daily
    token budget: sluiced marks it blocked in the shared tenant map, XDP
    refuses new connections from the source it learned for that tenant,
    and `sluicectl quota reset` lets it back in."""
    env = setup(t)
    keys = os.path.join(t.dir, "keys", "acme")
    tenants = "\n".join([
        "tenants:",
        "  - name: acme",
        "    keys_file: %s" % json.dumps(keys),
        "    limits: {tokens_per_day: 100}",
        "auth:",
        "  anonymous: allow",
        "quota:",
        "  default_max_tokens: 5"])   # small reservations: the spend decides
    gw = env.start(tenants=tenants)
    p = sh([os.path.join(run.BUILD, "sluicectl"), "key", "create", "acme", "-c",
            gw.config_path])
    key = p.stdout.strip().splitlines()[-1]
    auth = {"Authorization": "Bearer %s" % key}

    def keyed(timeout=5):
        return http_request(gw.port, "POST", CHAT, body=chat_body("spend it"), headers=auth,
                            timeout=timeout, host=env.ns.gw_addr, netns=env.ns.cl,
                            source=ACME)
    wait_until(lambda: keyed()[0] == 200, 5, "the key to be accepted")
    statuses = []
    for _ in range(20):
        st, _, body = keyed()
        statuses.append(st)
        if st != 200:
            break
    eq(statuses[-1], 429, "the daily budget runs out (statuses %r)" % statuses)
    eq(json.loads(body)["error"]["code"], "insufficient_quota", "refusal code")
    row = tenant_row(env, 1)
    check(row["blocked"] is True, "tenant map: acme not blocked: %r" % row)
    eq(env.metric("sluice_tenant_blocked", 'tenant="acme"'), 1, "sluice_tenant_blocked")

    # The source was learned for acme when its key was checked: its next
    # SYN is dropped by XDP, while another source still gets in.
    before = env.counters()["xdp_drop_blocked_learned"]
    try:
        s = connect_from(env, ACME, 1.5)
        s.close()
        fail("a new connection from the blocked tenant's source was accepted")
    except (socket.timeout, TimeoutError):
        pass
    check(env.counters()["xdp_drop_blocked_learned"] > before,
          "xdp_drop_blocked_learned did not move")
    env.ok(ANON, "another source while acme is blocked")

    reset = sh([os.path.join(run.BUILD, "sluicectl"), "--pin-root", env.pin, "-c",
                gw.config_path, "quota", "reset", "acme"], netns=env.ns.gw, check=False)
    eq(reset.returncode, 0, "sluicectl quota reset (%s)" % reset.stderr)
    row = tenant_row(env, 1)
    check(row["blocked"] is False, "blocked after quota reset: %r" % row)
    eq(keyed()[0], 200, "acme after the reset, on a new connection")
    env.stop()
