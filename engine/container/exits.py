"""One thread waits for every running container's exit, so the daemon does not grow with its containers.

Each container's monitor answers a `wait` connection with one JSON line when
the process exits. A thread per container blocked on that line cost the
daemon tens of KiB of memory per idle container (a thread stack and its
objects) and a thread each in `ps -L`; here one selector holds all the wait
connections, and the exits are applied on a small pool, which keeps
concurrent exits (fifty `docker run --rm` at once) as parallel as before
without a thread per container.
"""
from __future__ import annotations

import json
import logging
import selectors
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)

WORKERS = 8  # exits applied at once; each is a few runtime, network and store calls
LINE_MAX = 64 * 1024  # an exit line is well under 1 KiB; more is a broken monitor, read as no line


OnExit = Callable[[str, dict[str, Any] | None], None]


class ExitWatcher:
    """Calls a watch's `on_exit(cid, line)` on a pool thread when its connection delivers its line (a JSON
    object), or closes without one (None: the caller falls back to what the monitor left on disk)."""

    def __init__(self, workers: int = WORKERS) -> None:
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ)
        self._new: list[tuple[str, socket.socket, OnExit]] = []
        self._guard = threading.Lock()
        self._closed = False
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="exit")
        self._thread = threading.Thread(target=self._loop, name="exit-watcher", daemon=True)
        self._thread.start()

    def watch(self, cid: str, sock: socket.socket, on_exit: OnExit) -> None:
        """Take over `sock`, a wait connection of container `cid` (its op already sent)."""
        sock.setblocking(False)
        with self._guard:
            if self._closed:
                sock.close()
                return
            self._new.append((cid, sock, on_exit))
        self._wake()

    def report(self, cid: str, line: dict[str, Any] | None, on_exit: OnExit) -> None:
        """Apply an exit learnt some other way (no wait connection could be opened) on the same pool."""
        with self._guard:
            if not self._closed:
                self._pool.submit(self._call, on_exit, cid, line)

    def close(self) -> None:
        """Stop watching: the open connections close (their containers outlive the daemon, whose next
        recovery reads their exits) and exits not yet being applied are dropped with them."""
        with self._guard:
            if self._closed:
                return
            self._closed = True
        self._wake()
        self._thread.join(5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except BlockingIOError:
            pass  # a wake-up is pending already

    def _loop(self) -> None:
        watched: dict[socket.socket, tuple[str, OnExit, bytearray]] = {}
        while True:
            with self._guard:
                closed, new, self._new = self._closed, self._new, []
            for cid, sock, on_exit in new:
                watched[sock] = (cid, on_exit, bytearray())
                self._sel.register(sock, selectors.EVENT_READ)
            if closed:
                break
            for key, _ in self._sel.select():
                if key.fileobj is self._wake_r:
                    self._drain_wake()
                    continue
                sock = _socket(key.fileobj)
                cid, on_exit, buf = watched[sock]
                line = self._read(sock, buf)
                if line is not None:
                    self._sel.unregister(sock)
                    sock.close()
                    del watched[sock]
                    self.report(cid, _parse(line), on_exit)
        for sock in watched:
            self._sel.unregister(sock)
            sock.close()
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass

    @staticmethod
    def _read(sock: socket.socket, buf: bytearray) -> bytes | None:
        """The connection's complete line (b"" if it closed without one), or None while it is incomplete."""
        try:
            chunk = sock.recv(4096)
        except BlockingIOError:
            return None
        except OSError:
            return b""
        if not chunk:
            return b""
        buf += chunk
        end = buf.find(b"\n")
        if end >= 0:
            return bytes(buf[:end])
        return b"" if len(buf) > LINE_MAX else None

    @staticmethod
    def _call(on_exit: OnExit, cid: str, line: dict[str, Any] | None) -> None:
        try:
            on_exit(cid, line)
        except Exception:  # one container's failed exit must not stop the others'
            log.exception("applying the exit of container %s failed", cid[:12])


def _socket(obj: object) -> socket.socket:
    assert isinstance(obj, socket.socket)  # the selector holds only sockets
    return obj


def _parse(line: bytes) -> dict[str, Any] | None:
    if not line:
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
