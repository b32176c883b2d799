"""A non-root Jupyter server's engine: the user's own rootless pydockd, started when none answers.

A rootless engine cannot live inside the Jupyter server: it must join a user
namespace, which the kernel refuses to a multi-threaded process, and its
containers must outlive the server in any case. So the extension looks for the
user's pydockd on its default socket and, if nothing answers there, starts one
in its own session (so it outlives the server too) and forwards to it, as
proxy mode does for a configured socket.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from engine.rootless.paths import default_paths

START_TIMEOUT = 60.0


class DaemonStartError(Exception):
    """The user's pydockd neither answered nor could be started; the message says why."""


def answers(path: str) -> bool:
    """Whether a pydockd answers `GET /_ping` on the unix socket at `path`."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(path)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: pydockd\r\n\r\n")
            head = sock.recv(64)
    except OSError:
        return False
    return head.startswith(b"HTTP/1.") and head.split(b" ", 2)[1:2] == [b"200"]


def ensure_user_daemon(data_root: str, exec_root: str) -> str:
    """The socket of the user's running pydockd, starting one on `data_root` and `exec_root` if none answers.

    Options that match pydockd's own defaults are left out, so that the
    user's daemon.json stays in charge of them. The daemon's output goes to
    `<data root>/pydockd.log`.
    """
    defaults = default_paths()
    path = defaults.socket
    if answers(path):
        return path
    os.makedirs(data_root, mode=0o700, exist_ok=True)
    log_path = os.path.join(data_root, "pydockd.log")
    options = [*(["--data-root", data_root] if data_root != defaults.data_root else []),
               *(["--exec-root", exec_root] if exec_root != defaults.exec_root else [])]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "engine.pydockd", *options], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=log, cwd="/", start_new_session=True, close_fds=True)
    deadline = time.monotonic() + START_TIMEOUT
    while not answers(path):
        # a daemon another server started at the same moment may win the data root: then it answers
        if proc.poll() is not None and not answers(path) or time.monotonic() > deadline:
            with open(log_path, errors="replace") as f:
                tail = f.read()[-2000:].strip()
            raise DaemonStartError(f"the rootless pydockd did not start (see {log_path}): {tail}")
        time.sleep(0.1)
    return path
