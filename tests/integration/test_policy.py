# SPDX-License-Identifier: Apache-2.0
"""
Policy as code: include: spreads the config over files teams own,
sluiced --check validates them all with the included file's own line and
key in every error, a reload re-reads them, and sluicectl diff says what a
reload would change.
"""
import json
import os
import re
import signal
import subprocess

import run
from run import chat_body, check, eq

CHAT = "/v1/chat/completions"

MAIN = """listen: "127.0.0.1:18080"
workers: 1
kernel: {enabled: false}
include: ["conf.d/*.yaml", "teams/platform.yaml"]
backends:
  - name: local
    url: "http://127.0.0.1:9000/v1"
    models: ["mock-small"]
"""

ACME = """# team acme owns this file
tenants:
  - name: acme
    networks: ["10.20.0.0/16"]
    limits: {requests_per_minute: 600}
"""

BETA = """tenants:
  - name: beta
    limits: {requests_per_minute: 60}
"""

PLATFORM = """backends:
  - name: big
    url: "http://127.0.0.1:9001/v1"
    models: ["mock-large"]
"""


def tool(name, *args):
    return subprocess.run([os.path.join(run.BUILD, name)] + list(args), capture_output=True,
                          text=True, timeout=20, stdin=subprocess.DEVNULL)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def tree(root, main=MAIN, files=None):
    """A main file with its conf.d and teams/ under root; returns its path."""
    files = files if files is not None else {"conf.d/10-acme.yaml": ACME,
                                             "conf.d/20-beta.yaml": BETA,
                                             "teams/platform.yaml": PLATFORM}
    write(os.path.join(root, "sluice.yaml"), main)
    for rel, text in files.items():
        write(os.path.join(root, rel), text)
    return os.path.join(root, "sluice.yaml")


def check_fails(path, want_rx, what):
    p = tool("sluiced", "--check", "-c", path)
    eq(p.returncode, 1, "%s: --check exit status (stderr %r)" % (what, p.stderr))
    check(re.search(want_rx, p.stderr, re.M), "%s: --check said %r, want /%s/"
          % (what, p.stderr, want_rx))


def test_policy_include_check_ok_and_errors_name_the_included_file(t):
    root = os.path.join(t.dir, "a")
    path = tree(root)
    p = tool("sluiced", "--check", "-c", path)
    eq(p.returncode, 0, "--check of the whole set (stderr %r)" % p.stderr)

    # A bad value two lines into a team's file: that file, that line.
    write(os.path.join(root, "conf.d/20-beta.yaml"),
          BETA.replace("requests_per_minute: 60", "requests_per_minute: lots"))
    check_fails(path, r"^%s:3: tenants\[\d\]\.limits\.requests_per_minute: "
                % re.escape(os.path.join(root, "conf.d/20-beta.yaml")), "a bad limit")
    write(os.path.join(root, "conf.d/20-beta.yaml"), BETA)

    # Two teams claiming one tenant name.
    write(os.path.join(root, "conf.d/30-dup.yaml"), "tenants:\n  - name: acme\n")
    check_fails(path, r"30-dup\.yaml:2: tenants\[2\]\.name: duplicate tenant name acme",
                "a duplicate tenant")
    # An unknown key in an included file.
    write(os.path.join(root, "conf.d/30-dup.yaml"), "\ntenantz: []\n")
    check_fails(path, r"30-dup\.yaml:2: tenantz: unknown key", "an unknown key")
    # A non-list key set twice names both places.
    write(os.path.join(root, "conf.d/30-dup.yaml"), "workers: 2\n")
    check_fails(path, r"30-dup\.yaml:1: workers: already set in .*sluice\.yaml:2",
                "a scalar set twice")
    # Broken YAML, a nested include, a file that is not a mapping.
    write(os.path.join(root, "conf.d/30-dup.yaml"), "tenants: [\n")
    check_fails(path, r"30-dup\.yaml:\d+: yaml: ", "broken YAML")
    write(os.path.join(root, "conf.d/30-dup.yaml"), "include: [x.yaml]\n")
    check_fails(path, r"30-dup\.yaml:1: include: only the main file", "a nested include")
    write(os.path.join(root, "conf.d/30-dup.yaml"), "- a\n- b\n")
    check_fails(path, r"30-dup\.yaml:1: the file must be a mapping", "a list file")
    os.unlink(os.path.join(root, "conf.d/30-dup.yaml"))
    # A named (non-glob) file must exist; an empty glob is fine.
    os.unlink(os.path.join(root, "teams/platform.yaml"))
    check_fails(path, r"sluice\.yaml:4: include: .*teams/platform\.yaml: cannot open: No such file",
                "a missing file")
    write(os.path.join(root, "teams/platform.yaml"), PLATFORM)
    for f in os.listdir(os.path.join(root, "conf.d")):
        os.unlink(os.path.join(root, "conf.d", f))
    p = tool("sluiced", "--check", "-c", path)
    eq(p.returncode, 0, "--check with an empty conf.d (stderr %r)" % p.stderr)
    # include: of the wrong shape, in the main file.
    write(path, MAIN.replace('include: ["conf.d/*.yaml", "teams/platform.yaml"]',
                             "include: {a: b}"))
    check_fails(path, r"sluice\.yaml:4: include: wants a path", "include: a mapping")


def test_policy_diff_names_what_a_reload_changes(t):
    old = tree(os.path.join(t.dir, "old"))
    new = tree(os.path.join(t.dir, "new"), main=MAIN.replace("workers: 1", "workers: 2"),
               files={"conf.d/10-acme.yaml": ACME.replace("600", "100").replace(
                          "limits:", "keys_file: /etc/sluice/keys/acme\n    limits:"),
                      "conf.d/30-gamma.yaml": "tenants:\n  - name: gamma\n",
                      "teams/platform.yaml": PLATFORM.replace("9001", "9002")})
    p = tool("sluicectl", "diff", old, new)
    eq(p.returncode, 0, "diff exit status (stderr %r)" % p.stderr)
    out = p.stdout
    for rx in (r"^workers 1 -> 2\s+restart$",
               r"^backend big: url http://127\.0\.0\.1:9001/v1 -> http://127\.0\.0\.1:9002/v1"
               r"\s+reload$",
               r"^tenant acme: limits\.requests_per_minute 600 -> 100\s+reload$",
               r"^tenant acme: keys_file \(none\) -> /etc/sluice/keys/acme\s+reload$",
               r"^tenant beta: removed\s+reload$",
               r"^tenant gamma: added\s+reload$"):
        check(re.search(rx, out, re.M), "diff output lacks /%s/:\n%s" % (rx, out))
    eq(len(out.strip().splitlines()), 6, "diff lines:\n%s" % out)
    p = tool("sluicectl", "--json", "diff", old, new)
    doc = json.loads(p.stdout)
    eq(len(doc["changes"]), 6, "JSON changes")
    check({"subject": "tenant gamma", "what": "added", "from": None, "to": None,
           "applies": "reload"} in doc["changes"], "JSON: %r" % doc)
    p = tool("sluicectl", "diff", old, old)
    eq((p.returncode, p.stdout.strip()), (0, "no changes"), "diff of a file with itself")
    # A broken NEW is refused with its file and line, before any reload.
    write(os.path.join(t.dir, "new", "conf.d/30-gamma.yaml"), "tenants:\n  - nam: gamma\n")
    p = tool("sluicectl", "diff", old, new)
    eq(p.returncode, 1, "diff with a broken NEW")
    check(re.search(r"30-gamma\.yaml:2: tenants\[\d\]\.nam: unknown key", p.stderr),
          "diff stderr %r" % p.stderr)
    # Routes added or re-weighted apply on reload (issue 11 section 5).
    route = ('routes:\n  - model: "chat"\n    targets:\n'
             '      - {backend: local, model: "mock-small", weight: %d}\n')
    r_old = tree(os.path.join(t.dir, "r1"), main=MAIN + route % 95)
    r_new = tree(os.path.join(t.dir, "r2"), main=MAIN + route % 5 + '  - model: "chat2"\n'
                 '    targets:\n      - {backend: local}\n')
    p = tool("sluicectl", "diff", r_old, r_new)
    eq(p.returncode, 0, "route diff (stderr %r)" % p.stderr)
    check(re.search(r"^route chat: targets local/mock-small\*95 -> local/mock-small\*5\s+reload$",
                    p.stdout, re.M) and re.search(r"^route chat2: added\s+reload$", p.stdout, re.M),
          "route diff: %r" % p.stdout)
    # Secrets are compared, never printed.
    sec_old = tree(os.path.join(t.dir, "s1"), main=MAIN.replace(
        'models: ["mock-small"]', 'models: ["mock-small"]\n    api_key: "sk-old-secret"'))
    sec_new = tree(os.path.join(t.dir, "s2"), main=MAIN.replace(
        'models: ["mock-small"]', 'models: ["mock-small"]\n    api_key: "sk-new-secret"'))
    p = tool("sluicectl", "diff", sec_old, sec_new)
    check("api_key changed" in p.stdout and "secret" not in p.stdout,
          "api_key diff: %r" % p.stdout)


def test_policy_reload_rereads_included_files(t):
    mock = t.mock()
    conf = os.path.join(t.dir, "conf.d")
    write(os.path.join(conf, "acme.yaml"),
          'tenants:\n  - name: acme\n'
          '    limits: {requests_per_minute: 2}\n')
    gw = t.gateway(mock=mock, workers=1,
                   extra_yaml='include: "conf.d/*.yaml"\nauth:\n  anonymous: acme')
    for i in range(2):
        st, _, body = run.post(gw.port, CHAT, chat_body("hi"))
        eq(st, 200, "request %d within the included limit (%r)" % (i, body[:200]))
    st, _, body = run.post(gw.port, CHAT, chat_body("hi"))
    run.assert_openai_error(st, body, 429, want_code="rate_limit_exceeded",
                            what="past the included file's limit")
    # The team raises its limit in its own file; a reload applies it.
    write(os.path.join(conf, "acme.yaml"),
          'tenants:\n  - name: acme\n'
          '    limits: {requests_per_minute: 100}\n')
    gw.signal(signal.SIGHUP)
    gw.wait_stderr(r"reload: applied", 5, "the reload")
    st, _, body = run.post(gw.port, CHAT, chat_body("hi"))
    eq(st, 200, "after the included file was raised and reloaded (%r)" % body[:200])
    # A broken team file is refused and the running config kept.
    write(os.path.join(conf, "acme.yaml"), "tenants:\n  - name: acme\n    limits: nope\n")
    gw.signal(signal.SIGHUP)
    gw.wait_stderr(r"reload: .*acme\.yaml:3: .*kept the running config", 5,
                   "the refused reload naming the team file")
    st, _, _ = run.post(gw.port, CHAT, chat_body("hi"))
    eq(st, 200, "after a refused reload")
