# SPDX-License-Identifier: Apache-2.0
"""
The container image (deploy/image): built from this tree by build.sh,
FROM scratch, it runs sluiced --version, and run as the DaemonSet runs it
(privileged, the host's BPF filesystem and cgroups, a network namespace of
its own) it attaches XDP to a veth there and serves a request.

This machine's quirks, not the image's: its cgroups are hybrid (v1 plus a
v2 tree at /sys/fs/cgroup/unified), which crun refuses, so podman runs the
container with runc and the cgroupfs manager; and it lacks
CAP_SYS_RESOURCE, so the container's rlimits are set below the host's.
The test skips, saying why, only when podman cannot run a container at all.
"""
import json
import os
import re
import shutil
import subprocess

import run
import test_kernel as tk
from netns import Netns, kernel_dirs, sh
from run import chat_body, check, eq, http_request, wait_until

PODMAN_RUN = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs", "run",
              "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]


def info(msg):
    print("info: %s" % msg, flush=True)


def podman(*args, timeout=120, check_rc=True):
    p = subprocess.run(["podman"] + list(args), capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    if check_rc and p.returncode != 0:
        run.fail("podman %s: exit %d: %s" % (" ".join(args), p.returncode, p.stderr[-2000:]))
    return p


def build_image(t):
    """build.sh with a tag of this test's own, removed at cleanup."""
    tag = "localhost/sluice-it-%d:test" % os.getpid()
    t.on_cleanup(lambda: podman("rmi", "-f", tag, check_rc=False))
    p = subprocess.run([os.path.join(run.ROOT, "deploy", "image", "build.sh"),
                        "--build", run.BUILD, "--tag", tag], capture_output=True, text=True,
                       timeout=300)
    eq(p.returncode, 0, "build.sh exit status (stderr %s)" % p.stderr[-2000:])
    eq(p.stdout.strip().splitlines()[-1], tag, "build.sh's last line")
    return tag


def test_image_builds_runs_version_and_serves_with_xdp_in_a_netns(t):
    if not shutil.which("podman"):
        run.fail("podman is missing: tools/deps.sh test installs it")
    tag = build_image(t)
    p = subprocess.run(PODMAN_RUN + ["--rm", "--network", "none", tag, "--version"],
                       capture_output=True, text=True, timeout=120)
    if p.returncode in (125, 126, 127) and "OCI" in p.stderr:
        info("SKIP: podman cannot run a container on this machine: %s" % p.stderr.strip())
        return
    with open(os.path.join(run.ROOT, "VERSION")) as f:
        version = f.read().strip()
    eq((p.returncode, p.stdout.strip()), (0, "sluiced %s" % version),
       "sluiced --version in the image (stderr %r)" % p.stderr)
    img = json.loads(podman("image", "inspect", tag).stdout)[0]
    size = img["Size"]
    eq(img["Config"].get("Entrypoint"), ["/usr/sbin/sluiced"], "the entrypoint")
    check(size < 64 << 20, "the image is %d bytes: more than sluiced and its libraries" % size)
    # Nothing but what sluiced needs: no shell, no package manager.
    p = subprocess.run(PODMAN_RUN + ["--rm", "--network", "none", "--entrypoint", "/bin/sh",
                                     tag, "-c", "true"], capture_output=True, text=True,
                       timeout=60)
    check(p.returncode != 0, "the image has a shell")

    # As the DaemonSet runs it, in a namespace with a veth of its own.
    ns = Netns(t)
    pin, cg = kernel_dirs(t)
    mock = t.mock(netns=ns.gw)
    port = run.free_port()
    cfg = os.path.join(t.dir, "sluice.yaml")
    with open(cfg, "w") as f:
        f.write('listen: "%s:%d"\nworkers: 2\n'
                'timeouts: {drain: 3s}\n'
                'kernel:\n  pin_root: "%s"\n  cgroup: "%s"\n  pin_links: true\n'
                '  xdp: {interfaces: ["%s"], mode: auto}\n  deny: ["%s/32"]\n'
                'backends:\n  - name: mock\n    url: "%s"\n    models: ["mock-small"]\n'
                % (ns.gw_addr, port, pin, cg, ns.gw_if, tk.FLOOD, mock.url))
    name = "sluice-it-%d" % os.getpid()
    t.on_cleanup(lambda: podman("rm", "-f", "-t", "0", name, check_rc=False))
    podman(*PODMAN_RUN[1:], "-d", "--name", name, "--privileged",
           "--network", "ns:/run/netns/%s" % ns.gw,
           "-v", "/sys/fs/bpf:/sys/fs/bpf", "-v", "/sys/fs/cgroup/unified:/sys/fs/cgroup/unified",
           "-v", "%s:/etc/sluice/sluice.yaml:ro" % cfg, tag)

    def logs():
        return podman("logs", name, check_rc=False).stderr + podman("logs", name,
                                                                  check_rc=False).stdout

    def ready():
        if "kernel: maps under" not in logs():
            return False
        try:
            st, _, _ = http_request(port, "GET", "/readyz", timeout=1, host=ns.gw_addr,
                                    netns=ns.cl, source=tk.ANON)
            return st == 200
        except OSError:
            return False
    wait_until(ready, 20, "the containerized sluiced ready (logs: %s)" % logs()[-1500:])
    out = logs()
    check("kernel features off" not in out, "kernel off in the container:\n%s" % out[-2000:])
    check(re.search(r"xdp attached to %s" % ns.gw_if, out), "no XDP in the container's log:\n%s"
          % out[-2000:])

    st, _, body = http_request(port, "POST", "/v1/chat/completions", body=chat_body("hi"),
                               timeout=10, host=ns.gw_addr, netns=ns.cl, source=tk.ANON)
    eq(st, 200, "a request through the container (body %r)" % body[:300])
    env = tk.Env(t, ns, pin, cg)
    env.gw = type("G", (), {"port": port})()
    check(tk.refused(env), "the denied source got through the container's XDP")
    # The host's own sluicectl reads the maps the container pinned.
    counters = json.loads(sh([os.path.join(run.BUILD, "sluicectl"), "--pin-root", pin, "--json",
                              "counters"], netns=ns.gw).stdout)["counters"]
    check(counters["xdp_drop_deny"] > 0, "xdp_drop_deny is 0: %r" % counters)

    podman("stop", "-t", "15", name, timeout=60)
    state = json.loads(podman("inspect", name).stdout)[0]["State"]
    eq(state["ExitCode"], 0, "the container's exit status after podman stop (SIGTERM drain)")
    info("image %s: %.1f MB (podman image inspect .Size)" % (tag, size / 1e6))
