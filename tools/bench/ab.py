#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A/B cost of a change: two sluiced binaries, one mockllm, one run.

    tools/bench/ab.py OLD_SLUICED NEW_SLUICED [--rounds N] [--dur S]
                      [--title TITLE --results FILE] [--config-extra YAML]
                      [--config-extra-new YAML]

Both gateways (one worker, kernel half off, no access log) relay to the
same mockllm.  For the non-stream and the stream scripts, wrk -t2 -c64 runs
against each in turn, in rounds whose order alternates (old new, new old,
...), so a noisy neighbour hits both alike; each round gives requests/s and
the gateway's CPU (utime+stime from /proc) per completed request.  Reported:
the medians, and the median of the paired per-round differences new - old
in CPU µs/request, which is the figure a change's cost is judged by.

With --title and --results the table replaces (or is appended as) the
section "## TITLE" of the results file, as the other bench scripts do.
Everything listens on 127.0.0.1; every process is killed on exit.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

from benchlib import free_port, wait_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "tools", "bench")
SCRIPTS = (("non-stream", "chat.lua"), ("stream", "stream.lua"))


def cpu_seconds(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(port, script, dur):
    out = subprocess.run(["wrk", "-t2", "-c64", "-d%ds" % dur, "-s", os.path.join(BENCH, script),
                          "http://127.0.0.1:%d/v1/chat/completions" % port],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"(\d+) requests in", out)
    if not m:
        sys.exit("ab: wrk printed no request count:\n" + out)
    if "Non-2xx" in out or "Socket errors" in out:
        sys.exit("ab: wrk saw errors:\n" + out)
    return int(m.group(1))


def measure(gw, script, dur):
    proc, port = gw
    c0 = cpu_seconds(proc.pid)
    n = wrk(port, script, dur)
    c1 = cpu_seconds(proc.pid)
    return n / dur, (c1 - c0) * 1e6 / max(n, 1)


def start_gateway(tmp, name, binary, mock_port, extra):
    port = free_port()
    cfg = os.path.join(tmp, name + ".yaml")
    with open(cfg, "w") as f:
        f.write('listen: "127.0.0.1:%d"\nworkers: 1\naccess_log: "off"\nlog_level: warn\n'
                'kernel: {enabled: false}\nbackends:\n  - name: m\n'
                '    url: "http://127.0.0.1:%d/v1"\n    models: ["mock-small"]\n%s'
                % (port, mock_port, extra))
    proc = subprocess.Popen([binary, "-c", cfg], stderr=open(os.path.join(tmp, name + ".err"), "w"))
    wait_port(port, proc, name)
    return proc, port


def write_section(results, title, text):
    """Replace "## title" up to the next "## " heading, or append it."""
    old = open(results).read().split("\n") if os.path.exists(results) else []
    out, skipping, done = [], False, False
    for line in old:
        if line == "## " + title:
            out.extend(text.rstrip("\n").split("\n"))
            skipping, done = True, True
            continue
        if skipping and line.startswith("## "):
            skipping = False
            out.append("")
        if not skipping:
            out.append(line)
    if not done:
        if out and out[-1] != "":
            out.append("")
        out.extend(text.rstrip("\n").split("\n"))
    with open(results, "w") as f:
        f.write("\n".join(out).rstrip("\n") + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--dur", type=int, default=5)
    ap.add_argument("--mockllm", default=os.path.join(ROOT, "build", "mockllm"))
    ap.add_argument("--config-extra", default="", help="YAML appended to both configs")
    ap.add_argument("--config-extra-new", default="",
                    help="YAML appended to new's config only: A/B of a setting (e.g. "
                         "guardrails) with one binary given twice")
    ap.add_argument("--title")
    ap.add_argument("--results")
    ap.add_argument("--note", default="", help="a line under the title: what old and new are")
    a = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("ab: wrk is not installed (tools/deps.sh bench)")
    tmp = tempfile.mkdtemp(prefix="sluice-ab-")
    procs = []
    try:
        mock_port = free_port()
        mock = subprocess.Popen([a.mockllm, "--listen", "127.0.0.1:%d" % mock_port, "--threads", "2"],
                                stderr=open(os.path.join(tmp, "mock.err"), "w"))
        procs.append(mock)
        wait_port(mock_port, mock, "mockllm")
        gws = {}
        for name, binary in (("old", a.old), ("new", a.new)):
            extra = a.config_extra + (a.config_extra_new if name == "new" else "")
            gws[name] = start_gateway(tmp, name, binary, mock_port, extra)
            procs.append(gws[name][0])
        rows = []
        for kind, script in SCRIPTS:
            res = {"old": [], "new": []}
            for name in res:
                wrk(gws[name][1], script, 1)		# warm-up
            for r in range(a.rounds):
                for name in (("old", "new") if r % 2 == 0 else ("new", "old")):
                    res[name].append(measure(gws[name], script, a.dur))
            med = {n: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v))
                   for n, v in res.items()}
            diffs = [n[1] - o[1] for o, n in zip(res["old"], res["new"])]
            rows.append((kind, med, statistics.median(diffs), diffs))
    finally:
        for p in procs:
            p.kill()
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    lines = []
    if a.title:
        lines += ["## " + a.title, ""]
    if a.note:
        lines += [a.note, ""]
    lines += ["%d interleaved rounds of %d s, wrk -t2 -c64, one worker, kernel half off; "
              "CPU = the gateway's utime+stime per completed request." % (a.rounds, a.dur), "",
              "| kind | old req/s | new req/s | old CPU µs/req | new CPU µs/req "
              "| paired new − old, µs/req (median) | per round |",
              "|---|---:|---:|---:|---:|---:|---|"]
    for kind, med, dmed, diffs in rows:
        lines.append("| %s | %.0f | %.0f | %.2f | %.2f | %+.2f | %s |" % (
            kind, med["old"][0], med["new"][0], med["old"][1], med["new"][1], dmed,
            ", ".join("%+.2f" % d for d in diffs)))
    text = "\n".join(lines) + "\n"
    print(text)
    if a.results and a.title:
        write_section(a.results, a.title, text)


if __name__ == "__main__":
    main()
