# SPDX-License-Identifier: Apache-2.0
"""
Fixtures for the kernel tests: a pair of network namespaces joined by a
veth pair, and a private BPF pin root and cgroup for one sluiced.

    ns = Netns(ctx)          # gateway ns (10.199.0.1/24 on ns.gw_if) and
                             # client ns (10.199.0.2, .3, .4 on ns.cl_if)
    pin, cg = kernel_dirs(ctx)

Everything is created under names unique to this process and test
(slc-<pid>-<n>-gw, /sys/fs/bpf/sluice-it-<pid>-<n>, ...) and removed by a
Ctx.on_cleanup registered *before* it is created, so a failure half way
still leaves nothing behind.  Nothing here touches eth0, the root cgroup
or the default pin root /sys/fs/bpf/sluice.
"""
import itertools
import os
import subprocess
import time

import run

GW_ADDR = "10.199.0.1"
CLIENT_ADDRS = ("10.199.0.2", "10.199.0.3", "10.199.0.4")
PREFIX = 24

BPFFS = "/sys/fs/bpf"
CGROUP2 = "/sys/fs/cgroup/unified"

_seq = itertools.count(1)


def sh(argv, check=True, timeout=20, netns=None, input=None):
    """Run a command (in netns if given); CompletedProcess with text output."""
    argv = run.netns_argv(netns) + list(argv)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input,
                       stdin=None if input is not None else subprocess.DEVNULL)
    if check and r.returncode != 0:
        run.fail("%s: exit %d\nstdout: %s\nstderr: %s"
                 % (" ".join(argv), r.returncode, r.stdout[-2000:], r.stderr[-2000:]))
    return r


class Netns:
    """Gateway and client network namespaces joined by one veth pair."""

    def __init__(self, ctx):
        n = next(_seq)
        pid = os.getpid()
        self.gw = "slc-%d-%d-gw" % (pid, n)
        self.cl = "slc-%d-%d-cl" % (pid, n)
        # Interface names: at most 15 characters.
        self.gw_if = ("sg%d%d" % (pid, n))[:15]
        self.cl_if = ("sc%d%d" % (pid, n))[:15]
        self.gw_addr = GW_ADDR
        self.client_addrs = CLIENT_ADDRS
        ctx.on_cleanup(self.remove)
        for ns in (self.gw, self.cl):
            sh(["ip", "netns", "add", ns])
        # Created straight inside the namespaces: no name ever lives in the
        # root namespace.
        sh(["ip", "link", "add", self.gw_if, "netns", self.gw, "type", "veth",
            "peer", "name", self.cl_if, "netns", self.cl])
        sh(["ip", "-n", self.gw, "addr", "add", "%s/%d" % (GW_ADDR, PREFIX), "dev", self.gw_if])
        for a in CLIENT_ADDRS:
            sh(["ip", "-n", self.cl, "addr", "add", "%s/%d" % (a, PREFIX), "dev", self.cl_if])
        for ns, dev in ((self.gw, self.gw_if), (self.cl, self.cl_if)):
            sh(["ip", "-n", ns, "link", "set", "lo", "up"])
            sh(["ip", "-n", ns, "link", "set", dev, "up"])
        run.wait_until(lambda: "LOWER_UP" in sh(["ip", "-n", self.cl, "link", "show",
                                                 self.cl_if]).stdout,
                       5, "veth %s up" % self.cl_if)

    def remove(self):
        """Delete both namespaces (the veth pair goes with them)."""
        for ns in (self.gw, self.cl):
            if os.path.exists("/run/netns/%s" % ns):
                sh(["ip", "netns", "del", ns], check=False)
        left = [ns for ns in (self.gw, self.cl) if os.path.exists("/run/netns/%s" % ns)]
        if left:
            raise RuntimeError("network namespaces not removed: %s" % left)

    def link_details(self):
        """`ip -d link show` of the gateway-side veth, in its namespace."""
        return sh(["ip", "-d", "link", "show", "dev", self.gw_if], netns=self.gw).stdout


def _rmdir_retry(path, timeout=5.0):
    """rmdir a cgroup: it may stay busy for a moment after its last process
    exits."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def kernel_dirs(ctx):
    """A fresh pin root and cgroup path for one sluiced (sluiced creates
    them); both are removed when the test ends, after its processes."""
    n = next(_seq)
    pid = os.getpid()
    pin = os.path.join(BPFFS, "sluice-it-%d-%d" % (pid, n))
    cg = os.path.join(CGROUP2, "sluice-it-%d-%d" % (pid, n))

    def remove():
        problems = []
        if os.path.isdir(pin):
            for f in os.listdir(pin):
                try:
                    os.unlink(os.path.join(pin, f))
                except OSError as e:
                    problems.append("%s/%s: %s" % (pin, f, e))
            try:
                os.rmdir(pin)
            except OSError as e:
                problems.append("%s: %s" % (pin, e))
        if os.path.isdir(cg):
            try:
                _rmdir_retry(cg)
            except OSError as e:
                procs = ""
                try:
                    with open(os.path.join(cg, "cgroup.procs")) as f:
                        procs = f.read().split()
                except OSError:
                    pass
                problems.append("%s: %s (processes still in it: %s)" % (cg, e, procs))
        if problems:
            raise RuntimeError("; ".join(problems))
    ctx.on_cleanup(remove)
    return pin, cg
