# SPDX-License-Identifier: Apache-2.0
"""
deploy/kubernetes: every manifest passes the Kubernetes schemas with no
unknown field (tests/deploy/validate.mjs, kubernetes-models + tsc), the
configuration the ConfigMaps carry passes sluiced --check, and the pieces
agree with each other and with what a rolling restart needs.  Missing
node/npm or a failed `npm install` is a failure, not a skip.
"""
import glob
import json
import os
import re
import subprocess

import run
from run import check, eq

DEPLOY_DIR = os.path.join(run.ROOT, "tests", "deploy")
MANIFESTS = sorted(glob.glob(os.path.join(run.ROOT, "deploy", "kubernetes", "*.yaml")))


def _npm_install():
    return run.npm_install(DEPLOY_DIR, os.path.join(".bin", "tsc"))


def validate(node, files):
    return subprocess.run([node, "validate.mjs"] + files, cwd=DEPLOY_DIR, capture_output=True,
                          text=True, timeout=120)


def objects_by_kind(node):
    p = validate(node, MANIFESTS)
    eq(p.returncode, 0, "validate.mjs on deploy/kubernetes (stderr %s)" % p.stderr[-3000:])
    out = {}
    for o in json.loads(p.stdout)["objects"]:
        obj = o["object"]
        out.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = obj
    return out


def test_deploy_manifests_pass_the_kubernetes_schemas(t):
    node = _npm_install()
    check(len(MANIFESTS) >= 7, "deploy/kubernetes has %d files" % len(MANIFESTS))
    kinds = objects_by_kind(node)
    for kind in ("Namespace", "ServiceAccount", "ConfigMap", "Secret", "DaemonSet", "Service",
                 "PodMonitor", "NetworkPolicy"):
        check(kind in kinds, "no %s in deploy/kubernetes (have %s)" % (kind, sorted(kinds)))

    # The validator can fail: a typo'd field, a wrong type, a missing
    # required field, an unknown kind, each in a copy of the DaemonSet.
    with open(os.path.join(run.ROOT, "deploy", "kubernetes", "40-daemonset.yaml")) as f:
        ds = f.read()
    bad = {
        "imagePullPolicyy": (ds.replace("imagePullPolicy:", "imagePullPolicyy:"),
                             r"imagePullPolicyy.*does not exist in type 'IContainer'"),
        "failureThreshold string": (ds.replace("failureThreshold: 1", 'failureThreshold: "one"'),
                                    r"failureThreshold must be integer"),
        "no selector": (re.sub(r"  selector:\n    matchLabels:\n      app.kubernetes.io/name: "
                               r"sluice\n", "", ds, count=1),
                        r"must have required property '?selector"),
        "unknown kind": (ds.replace("kind: DaemonSet", "kind: DaemonSett"),
                         r"unknown type apps/v1 DaemonSett"),
    }
    for what, (text, want) in bad.items():
        path = os.path.join(t.dir, "bad.yaml")
        with open(path, "w") as f:
            f.write(text)
        p = validate(node, [path])
        eq(p.returncode, 1, "validate.mjs on a DaemonSet with %s" % what)
        check(re.search(want, p.stderr), "%s: validator said %r, want /%s/"
              % (what, p.stderr[-1500:], want))


def _admin_port(cfg_text):
    m = re.search(r'admin:\s*\n\s+listen:\s*"[^"]*:(\d+)"', cfg_text)
    check(m, "no admin.listen in the ConfigMap's sluice.yaml")
    return int(m.group(1))


def test_deploy_daemonset_fits_rolling_restarts_and_the_config_checks(t):
    node = _npm_install()
    kinds = objects_by_kind(node)
    ds = kinds["DaemonSet"]["sluice"]
    pod = ds["spec"]["template"]["spec"]
    c = pod["containers"][0]
    cfg_text = kinds["ConfigMap"]["sluice-config"]["data"]["sluice.yaml"]

    # The image is the one deploy/image/build.sh tags.
    with open(os.path.join(run.ROOT, "VERSION")) as f:
        eq(c["image"], "localhost/sluice:%s" % f.read().strip(), "the container image")
    # The kernel half: host network, BPF filesystem and cgroups of the node.
    eq(pod.get("hostNetwork"), True, "hostNetwork")
    check(c["securityContext"].get("privileged") or
          {"BPF", "NET_ADMIN", "SYS_ADMIN", "PERFMON"} <=
          set(c["securityContext"].get("capabilities", {}).get("add", [])),
          "neither privileged nor the BPF capabilities: %r" % c["securityContext"])
    vols = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    for path in ("/sys/fs/bpf", "/sys/fs/cgroup"):
        check(path in mounts, "%s not mounted" % path)
        eq(vols[mounts[path]["name"]].get("hostPath", {}).get("path"), path,
           "the host path mounted at %s" % path)
    # Probes on the admin listener the config opens.
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    admin = _admin_port(cfg_text)
    eq(ports.get("admin"), admin, "the admin container port")
    eq(c["readinessProbe"]["httpGet"]["path"], "/readyz", "readiness path")
    eq(c["livenessProbe"]["httpGet"]["path"], "/healthz", "liveness path")
    eq(c["readinessProbe"]["httpGet"]["port"], "admin", "readiness port")
    # Rolling restarts: the new pod beside the old one, links pinned, and
    # time for the drain.
    ru = ds["spec"]["updateStrategy"]["rollingUpdate"]
    eq((ru.get("maxSurge"), ru.get("maxUnavailable")), (1, 0), "maxSurge/maxUnavailable")
    check(re.search(r"^\s+pin_links: true", cfg_text, re.M), "kernel.pin_links is not on")
    drain = int(re.search(r"drain: (\d+)s", cfg_text).group(1))
    pre = c["lifecycle"]["preStop"]["sleep"]["seconds"]
    check(pod["terminationGracePeriodSeconds"] > drain + pre,
          "terminationGracePeriodSeconds %d <= drain %d + preStop %d"
          % (pod["terminationGracePeriodSeconds"], drain, pre))
    # The other objects point at what exists.
    svc = kinds["Service"]["sluice"]
    eq(svc["spec"]["ports"][0]["targetPort"], "api", "the Service's target port")
    check("api" in ports, "no api container port")
    eq(kinds["PodMonitor"]["sluice"]["spec"]["podMetricsEndpoints"][0]["port"], "admin",
       "the PodMonitor port")
    np_ports = [p["port"] for rule in kinds["NetworkPolicy"]["sluice-admin"]["spec"]["ingress"]
                for p in rule.get("ports", [])]
    check(admin in np_ports and ports["api"] in np_ports,
          "NetworkPolicy ports %r lack admin %d or api %d" % (np_ports, admin, ports["api"]))
    for env in c.get("envFrom", []):
        check(env["secretRef"]["name"] in kinds["Secret"], "envFrom names a missing Secret")
    for v in pod["volumes"]:
        if "configMap" in v:
            check(v["configMap"]["name"] in kinds["ConfigMap"], "volume %s: no such ConfigMap"
                  % v["name"])
        if "secret" in v:
            check(v["secret"]["secretName"] in kinds["Secret"], "volume %s: no such Secret"
                  % v["name"])

    # The files as the pod sees them pass sluiced --check.
    etc = os.path.join(t.dir, "etc-sluice")
    os.makedirs(os.path.join(etc, "conf.d"))
    # Backends resolve at load time and this machine has no DNS: their
    # hosts become loopback, everything else is checked as shipped.
    with open(os.path.join(etc, "sluice.yaml"), "w") as f:
        f.write(re.sub(r'url: "https://[^/"]+', 'url: "https://127.0.0.1', cfg_text))
    for name, text in kinds["ConfigMap"]["sluice-policy"]["data"].items():
        with open(os.path.join(etc, "conf.d", name), "w") as f:
            f.write(text)
    env = dict(os.environ)
    env.update(kinds["Secret"]["sluice-env"]["stringData"])
    p = subprocess.run([os.path.join(run.BUILD, "sluiced"), "--check", "-c",
                        os.path.join(etc, "sluice.yaml")], capture_output=True, text=True,
                       env=env, timeout=20)
    eq(p.returncode, 0, "sluiced --check on the ConfigMaps (stderr %r)" % p.stderr)
