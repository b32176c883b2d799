"""Threads for the handlers' long-lived work (hijacked sessions, streams, waits), parked between uses.

Such work cannot share the bounded pool of short calls (base.py): a session
lasts as long as its container, so a few would starve every other request.
It got a new thread each time, and `Thread.start` makes its caller wait
until the new thread has run, which on the IO loop meant waiting for the GIL
behind whichever worker held it: measured, starting the attach session's
thread was the loop's single largest cost on `docker run`'s path. A parked
thread is handed its next job with a queue put instead; a new one starts
only when none is parked, so there is no limit on how many run at once, and
one parked longer than IDLE_SECONDS ends, so a burst leaves none behind.
"""
from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

IDLE_SECONDS = 30.0

_Job = tuple[Callable[..., None], tuple[Any, ...], str]


class ParkedThreads:
    def __init__(self, idle_seconds: float = IDLE_SECONDS) -> None:
        self._idle_seconds = idle_seconds
        self._parked: list[queue.SimpleQueue[_Job]] = []  # each parked thread's inbox, last parked last
        self._lock = threading.Lock()

    def run(self, fn: Callable[..., None], *args: Any, name: str) -> None:
        """Run `fn(*args)` in a thread of its own (named `name` meanwhile), which may be a parked one."""
        with self._lock:
            inbox = self._parked.pop() if self._parked else None
        if inbox is None:
            inbox = queue.SimpleQueue()
            threading.Thread(target=self._serve, args=(inbox,), name=name, daemon=True).start()
        inbox.put((fn, args, name))

    def parked(self) -> int:
        """How many threads wait for work now."""
        with self._lock:
            return len(self._parked)

    def _serve(self, inbox: queue.SimpleQueue[_Job]) -> None:
        me = threading.current_thread()
        while True:
            try:
                fn, args, name = inbox.get(timeout=self._idle_seconds)
            except queue.Empty:
                with self._lock:
                    if inbox not in self._parked:
                        continue  # handed a job as the wait ended: it is in the inbox now
                    self._parked.remove(inbox)
                return
            me.name = name
            try:
                fn(*args)
            except BaseException:
                log.exception("%s failed", name)
            me.name = "parked"
            with self._lock:
                self._parked.append(inbox)


# the daemon's (and the Jupyter extension's) one set: handlers of every router share it
THREADS = ParkedThreads()
