"""The engine's open streams, so shutting down can end them before the store closes.

Streams (logs -f, events, wait, attach, exec, stats, build) run in their own
threads and read the SQLite store while they run. If the engine closed the
store under them, they would fail with "Cannot operate on a closed database";
`OpenStreams.end_all` cancels them and waits (bounded) until they are gone.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from engine.errors import Unavailable


class ShuttingDown(Unavailable):
    """A stream asked to start while the engine is closing its store."""


class OpenStreams:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._open: dict[int, tuple[threading.Event, Callable[[], object] | None]] = {}
        self._next = 0
        self._closing = False

    @contextmanager
    def track(self, cancel: threading.Event, on_cancel: Callable[[], object] | None = None) -> Iterator[None]:
        """Register a stream for the duration of the block.

        `cancel` is set when the engine shuts down; `on_cancel` also runs then,
        for streams that sleep on something `cancel` does not wake (a socket, a queue).
        """
        with self._cond:
            if self._closing:
                raise ShuttingDown("the engine is shutting down")
            key = self._next
            self._next += 1
            self._open[key] = (cancel, on_cancel)
        try:
            yield
        finally:
            with self._cond:
                del self._open[key]
                self._cond.notify_all()

    def end_all(self, timeout: float) -> int:
        """Refuse new streams, cancel the open ones and wait for them; returns how many outlived `timeout`."""
        with self._cond:
            self._closing = True
            streams = list(self._open.values())
        for cancel, on_cancel in streams:
            cancel.set()
            if on_cancel is not None:
                on_cancel()
        with self._cond:
            self._cond.wait_for(lambda: not self._open, timeout)
            return len(self._open)
