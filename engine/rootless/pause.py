"""The namespace holder ("pause process"): keeps a rootless engine's namespaces alive between daemons.

Run as `python3 -I -S pause.py pydock-holder EXEC_ROOT` by pydockd (see
holder.py). It creates a user namespace, a mount namespace and a network
namespace in one `unshare`, says so on stdout, and waits for one line on
stdin: the daemon writes its ID maps with `newuidmap`/`newgidmap` meanwhile
(an unmapped process cannot map itself to subordinate IDs; the setuid
helpers do it from outside), then sends "mapped". It answers "ready" and
from then on does nothing but exist, in its own session, so that the
namespaces, the overlay mounts made in them, the engine's bridges and the
containers' monitors outlive any one pydockd or Jupyter server. A daemon
that starts later joins these namespaces instead of making new ones.

Stdlib only and import-free of the engine, like the container monitor: it
lives as long as the user's engine and should cost little. The arguments
are not read; they name the process for the daemon that checks its pid file.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000


def main() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET) != 0:
        sys.stdout.write(f"error: unshare: {os.strerror(ctypes.get_errno())}\n")
        return 1
    sys.stdout.write("unshared\n")
    sys.stdout.flush()
    if sys.stdin.readline().strip() != "mapped":
        return 1  # the daemon gave up (or died) before mapping us: nothing to hold
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    for fd in (0, 1, 2):  # the daemon's pipes and log must not stay open for our whole life
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, fd)
        os.close(null)
    os.chdir("/")
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    while True:  # SIGTERM (default action) ends it
        signal.pause()


if __name__ == "__main__":
    sys.exit(main())
