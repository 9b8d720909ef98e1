# SPDX-License-Identifier: Apache-2.0
"""Test certificates made with the openssl command, for one test run."""
import os
import subprocess


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)


def ca(d, name="ca"):
    """A self-signed CA: (cert path, key path)."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", name + ".key", "-out", name + ".pem", "-days", "2",
            "-subj", "/CN=sluice test %s" % name, cwd=d)
    return os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")


def leaf(d, ca_pair, cn, sans=(), name=None, days=2, client=False, expired=False):
    """A certificate for cn (and SANs: "IP:1.2.3.4" or "DNS:x") signed by
    ca_pair: (cert path, key path).  expired: valid yesterday only."""
    name = name or cn.replace("*", "star")
    ext = os.path.join(d, name + ".cnf")
    with open(ext, "w") as f:
        if sans:
            f.write("subjectAltName=%s\n" % ",".join(sans))
        f.write("basicConstraints=CA:FALSE\n")
        f.write("extendedKeyUsage=%s\n" % ("clientAuth" if client else "serverAuth"))
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=%s" % cn, cwd=d)
    args = ["x509", "-req", "-in", name + ".csr", "-CA", ca_pair[0], "-CAkey", ca_pair[1],
            "-CAcreateserial", "-out", name + ".pem", "-extfile", ext]
    if expired:
        # openssl 3.0 x509 has no -not_before: a certificate signed with a
        # validity of zero days is already over when it is used.
        args += ["-days", "0"]
    else:
        args += ["-days", str(days)]
    openssl(*args, cwd=d)
    return os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")
