# SPDX-License-Identifier: Apache-2.0
"""What the Python bench tools share: loopback ports and waiting for a
process to listen on one."""
import socket
import sys
import time


def free_port():
    """A loopback port nobody listens on now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, what, timeout=10.0):
    """Wait until `proc` accepts on 127.0.0.1:port; exit if it dies or times out."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            sys.exit("%s exited early (status %s)" % (what, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("%s did not listen on %d" % (what, port))
