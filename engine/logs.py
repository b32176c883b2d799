"""Reading json-file container logs: tail, since/until, timestamps, follow."""
from __future__ import annotations

import json
import threading
import time
from collections import deque
from typing import Callable, Iterator

from .timeutil import parse_rfc3339_ns

LogEntry = tuple[str, bytes, str]  # stream, payload, RFC 3339 time


def _parse(line: bytes) -> LogEntry | None:
    try:
        rec = json.loads(line)
        return rec["stream"], rec["log"].encode("utf-8", "surrogateescape"), rec["time"]
    except (ValueError, KeyError, TypeError):
        return None


def read_logs(path: str, *, stdout: bool = True, stderr: bool = True, since_ns: int = 0, until_ns: int = 0,
              tail: int = -1, follow: bool = False, is_running: Callable[[], bool] = lambda: False,
              cancel: threading.Event | None = None, poll: float = 0.1) -> Iterator[LogEntry]:
    """Yield log entries; with `follow`, keep yielding until the container stops or `cancel`."""
    streams = {s for s, on in (("stdout", stdout), ("stderr", stderr)) if on}

    def wanted(entry: LogEntry) -> bool:
        if entry[0] not in streams:
            return False
        if since_ns or until_ns:
            t = parse_rfc3339_ns(entry[2])
            if since_ns and t < since_ns:
                return False
            if until_ns and t > until_ns:
                return False
        return True

    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        if tail >= 0:
            last: deque[LogEntry] = deque(maxlen=tail) if tail > 0 else deque(maxlen=0)
            for line in f:
                e = _parse(line)
                if e and wanted(e):
                    last.append(e)
            yield from last
        else:
            for line in f:
                e = _parse(line)
                if e and wanted(e):
                    yield e
        if not follow:
            return
        buf = b""
        while not (cancel and cancel.is_set()):
            chunk = f.readline()
            if chunk:
                buf += chunk
                if buf.endswith(b"\n"):
                    e = _parse(buf)
                    buf = b""
                    if e and wanted(e):
                        yield e
                continue
            if not is_running():
                # one last read: the monitor may have flushed right before exiting
                for line in f:
                    e = _parse(line)
                    if e and wanted(e):
                        yield e
                return
            time.sleep(poll)


