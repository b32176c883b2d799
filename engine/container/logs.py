"""Reading container logs (json-file lines, also used by the local driver) across rotated files.

The monitor (engine/runtime/shim.py) writes one JSON object a line, in time order,
and rotates `name` to `name.1` (`name.1.gz` when compressed), `name.2`, ...
Reads are built to cost what they return, not the size of the log:
`tail` reads blocks backwards from the end, `since` binary-searches each
file by offset, and lines of the shape the monitor writes that need no
unescaping are taken apart by one regular-expression match instead of a
JSON parse (anything else gets the JSON parse).
"""
from __future__ import annotations

import calendar
import gzip
import json
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import IO, cast

from engine.errors import EngineError
from engine.timeutil import parse_rfc3339_ns

LogEntry = tuple[bytes, bytes, bytes]  # stream (b"stdout"/b"stderr"), payload, RFC 3339 time
CHUNK = 1 << 20
_STREAMS = (b"stdout", b"stderr")
# A line needing no unescaping (but perhaps a final "\n"): dockerd's compact shape, and the
# spaced one older pydock wrote. Anything else goes through a JSON parse.
_PLAIN = (re.compile(rb'\{"log":"([^"\\]*)(\\n)?","stream":"(stdout|stderr)","time":"([^"\\]*)"\}'),
          re.compile(rb'\{"log": "([^"\\]*)(\\n)?", "stream": "(stdout|stderr)", "time": "([^"\\]*)"\}'))
_seconds_cache: dict[bytes, int] = {}


def parse_line(line: bytes) -> LogEntry | None:
    """One log line (without its newline); None if it is not a complete log record."""
    m = _PLAIN[0].fullmatch(line) or _PLAIN[1].fullmatch(line)
    if m is None:
        return _parse_json(line)
    raw, newline, stream, ts = m.groups()
    return stream, raw + b"\n" if newline else raw, ts


def _parse_json(line: bytes) -> LogEntry | None:
    try:
        rec = json.loads(line)
        stream, log, ts = rec["stream"], rec["log"], rec["time"]
    except (ValueError, KeyError, TypeError):
        return None
    if not (isinstance(stream, str) and isinstance(log, str) and isinstance(ts, str)):
        return None
    return stream.encode(), log.encode("utf-8", "surrogateescape"), ts.encode()


def time_ns(ts: bytes) -> int:
    """An entry's time in ns; fast for the monitor's fixed-width UTC form, exact for any RFC 3339."""
    if len(ts) == 30 and ts[29:] == b"Z" and ts[19:20] == b".":
        secs = _seconds_cache.get(ts[:19])
        if secs is None:
            secs = calendar.timegm(time.strptime(ts[:19].decode(), "%Y-%m-%dT%H:%M:%S"))
            if len(_seconds_cache) > 4096:
                _seconds_cache.clear()
            _seconds_cache[ts[:19]] = secs
        return secs * 1_000_000_000 + int(ts[20:29])
    try:
        return parse_rfc3339_ns(ts.decode())
    except (UnicodeDecodeError, ValueError, EngineError):
        return 0  # a record with a bad time sorts first


class _Filter:
    """Which entries a request wants; `done` turns true once `until` is passed (logs are in time order)."""

    def __init__(self, stdout: bool, stderr: bool, since_ns: int, until_ns: int) -> None:
        self.streams = {s for s, on in zip(_STREAMS, (stdout, stderr)) if on}
        self.since_ns, self.until_ns = since_ns, until_ns
        self.done = False
        self.before_since = False  # set when a backward read meets an entry older than `since`

    def apply(self, lines: list[bytes]) -> list[LogEntry]:
        out = []
        timed = self.since_ns or self.until_ns
        for line in lines:
            e = parse_line(line)
            if e is None or e[0] not in self.streams:
                continue
            if timed:
                t = time_ns(e[2])
                if self.until_ns and t > self.until_ns:
                    self.done = True
                    break
                if t < self.since_ns:
                    continue
            out.append(e)
        return out


def log_files(path: str) -> list[str]:
    """The rotated files oldest first, then the live file."""
    rotated = []
    i = 1
    while True:
        name = next((n for n in (f"{path}.{i}", f"{path}.{i}.gz") if os.path.exists(n)), None)
        if name is None:
            break
        rotated.append(name)
        i += 1
    return rotated[::-1] + [path]


def _rotated_before(live: IO[bytes], path: str) -> list[str]:
    """log_files(path), less the file `live` became if the monitor rotated it since it was opened."""
    ino = os.fstat(live.fileno()).st_ino
    out = []
    for name in log_files(path)[:-1]:
        try:
            if os.stat(name).st_ino != ino:
                out.append(name)
        except FileNotFoundError:
            pass
    return [*out, path]


def _open(name: str) -> IO[bytes] | None:
    try:
        return cast(IO[bytes], gzip.open(name, "rb")) if name.endswith(".gz") else open(name, "rb")
    except FileNotFoundError:  # rotated away meanwhile
        return None


def _forward(f: IO[bytes], flt: _Filter) -> Iterator[list[LogEntry]]:
    """Batches of wanted entries from the file position on; a partial last line is left unread
    (in a plain file, the position is put back to its start for a follower to read it whole)."""
    rest = b""
    while not flt.done:
        chunk = f.read(CHUNK)
        if not chunk:
            if rest and not isinstance(f, gzip.GzipFile):
                f.seek(-len(rest), os.SEEK_CUR)
            return
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        batch = flt.apply(lines)
        if batch:
            yield batch


def _seek_since(f: IO[bytes], since_ns: int) -> None:
    """Position `f` at a line boundary at or before the first line with time >= since (binary search)."""
    lo, hi = 0, os.fstat(f.fileno()).st_size
    while hi - lo > 64 * 1024:
        mid = (lo + hi) // 2
        f.seek(mid)
        f.readline()  # the line `mid` falls in
        line = f.readline()
        entry = parse_line(line.rstrip(b"\n")) if line.endswith(b"\n") else None
        if entry is None or time_ns(entry[2]) >= since_ns:
            hi = mid
        else:
            lo = mid
    f.seek(lo)
    if lo:
        f.readline()


def _backward(f: IO[bytes], end: int, flt: _Filter, want: int) -> list[LogEntry]:
    """Up to `want` wanted entries ending at byte `end`, newest first, reading blocks from the end."""
    got: list[LogEntry] = []
    pos, rest = end, b""
    while pos > 0 and len(got) < want:
        n = min(CHUNK // 16 if not got else CHUNK, pos)
        pos -= n
        f.seek(pos)
        lines = (f.read(n) + rest).split(b"\n")
        rest = lines.pop(0) if pos else b""
        for line in reversed(lines):
            entry = _keep(line, flt)
            if entry == "stop":
                flt.before_since = True
                return got
            if entry is not None:
                got.append(entry)  # type: ignore[arg-type]
                if len(got) >= want:
                    return got
    return got


def _keep(line: bytes, flt: _Filter) -> LogEntry | str | None:
    """One line seen while reading backwards: the entry, None to skip it, "stop" once before `since`."""
    e = parse_line(line)
    if e is None or e[0] not in flt.streams:
        return None
    if flt.since_ns or flt.until_ns:
        t = time_ns(e[2])
        if t < flt.since_ns:
            return "stop"
        if flt.until_ns and t > flt.until_ns:
            return None
    return e


def _complete_end(f: IO[bytes]) -> int:
    """The offset just past the last newline: a line still being written is not read yet."""
    size = os.fstat(f.fileno()).st_size
    pos = size
    while pos > 0:
        n = min(64 * 1024, pos)
        f.seek(pos - n)
        nl = f.read(n).rfind(b"\n")
        if nl >= 0:
            return pos - n + nl + 1
        pos -= n
    return 0


def _tail(files: list[str], live: IO[bytes], live_end: int, flt: _Filter, want: int) -> list[LogEntry]:
    """The last `want` wanted entries across the files, oldest first."""
    newest_first = _backward(live, live_end, flt, want) if want else []
    for name in reversed(files[:-1]):
        if len(newest_first) >= want or flt.before_since:
            break
        f = _open(name)
        if f is None:
            continue
        with f:
            if name.endswith(".gz"):
                last: deque[LogEntry] = deque(maxlen=want - len(newest_first))
                for batch in _forward(f, flt):
                    last.extend(batch)
                newest_first.extend(reversed(last))
            else:
                newest_first.extend(_backward(f, _complete_end(f), flt, want - len(newest_first)))
    return newest_first[::-1]


def read_log_batches(path: str, *, stdout: bool = True, stderr: bool = True, since_ns: int = 0,
                     until_ns: int = 0, tail: int = -1, follow: bool = False,
                     is_running: Callable[[], bool] = lambda: False, cancel: threading.Event | None = None,
                     poll: float = 0.1) -> Iterator[list[LogEntry]]:
    """Wanted entries in batches (one per block read); with `follow`, keep going through rotations
    until the container stops or `cancel` is set."""
    flt = _Filter(stdout, stderr, since_ns, until_ns)
    live = _open(path)
    if live is None:
        return
    files = _rotated_before(live, path)
    with live:
        end = _complete_end(live)
        if tail >= 0:
            entries = _tail(files, live, end, flt, tail)
            if entries:
                yield entries
            live.seek(end)
        else:
            for name in files[:-1]:
                f = _open(name)
                if f is not None:
                    with f:
                        if since_ns and not name.endswith(".gz"):
                            _seek_since(f, since_ns)
                        yield from _forward(f, flt)
            if since_ns:
                _seek_since(live, since_ns)
            else:
                live.seek(0)
            yield from _forward(live, flt)
        if follow and not flt.done:
            yield from _follow(path, live, flt, is_running, cancel, poll)


def _follow(path: str, f: IO[bytes], flt: _Filter, is_running: Callable[[], bool],
            cancel: threading.Event | None, poll: float) -> Iterator[list[LogEntry]]:
    """New entries as the monitor appends them; on rotation, finish the old file and open the new one."""
    while not (cancel and cancel.is_set()) and not flt.done:
        got = False
        for batch in _forward(f, flt):
            got = True
            yield batch
        if got:
            continue
        try:
            st = os.stat(path)
        except FileNotFoundError:  # between the monitor's rename and its new file
            st = None
        if st is not None and st.st_ino != os.fstat(f.fileno()).st_ino:
            yield from _forward(f, flt)
            f.close()
            new = _open(path)
            if new is None:
                return
            f = new
            continue
        if st is not None and st.st_size < f.tell():  # truncated: max-file 1 rotates in place
            f.seek(0)
            continue
        if not is_running():
            yield from _forward(f, flt)  # the monitor may have written right before exiting
            return
        time.sleep(poll)
    f.close()

