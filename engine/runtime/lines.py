"""The monitor's line protocol, shared by the runc runtime and the in-memory fake that imitates it.

A connection opens with one JSON line naming the operation; answers are JSON
lines too, until an attach turns the connection into the process's streams.
The per-container monitor (shim.py) speaks the other side; it runs standalone,
so it keeps its own copy.
"""
from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

from engine.errors import Conflict


def read_line(sock: socket.socket) -> dict[str, Any] | None:
    """The next JSON line; None when the other side closed first."""
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = sock.recv(1)  # byte by byte: what follows the line belongs to the process's streams
        if not chunk:
            return None
        buf += chunk
    return dict(json.loads(buf))


def request(connect: Callable[..., socket.socket], cid: str, op: dict[str, Any], timeout: float) -> dict[str, Any]:
    """One request and its answer line; a monitor that is gone means the container is not running."""
    try:
        sock = connect(cid, op, timeout)
    except OSError as e:
        raise Conflict(f"container {cid[:12]} is not running") from e
    with sock:
        reply = read_line(sock)
    if reply is None:
        raise Conflict(f"container {cid[:12]} is not running")
    return reply


def open_attach(connect: Callable[..., socket.socket], sid: str, *, stdin: bool, stdout: bool, stderr: bool,
                close_stdin: bool) -> socket.socket:
    """An attach connection, once the monitor has acknowledged it; OSError if it closed instead."""
    sock = connect(sid, {"op": "attach", "stdin": stdin, "stdout": stdout, "stderr": stderr,
                         "close_stdin": close_stdin}, timeout=None)
    if read_line(sock) is None:
        sock.close()
        raise OSError(f"the monitor of {sid[:12]} closed the attach connection")
    return sock
