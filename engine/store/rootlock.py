"""One engine per data root: an exclusive lock held for the engine's life.

Two engines on one data root (pydockd and the Jupyter extension, or two
pydockd) would fight over the SQLite store, the nftables table and the
containers. The first takes a `flock` on `<data root>/pydock.lock` and writes
its pid and program there, so the second can say who holds the root. The
descriptor is close-on-exec (Python's default), so container monitors, which
outlive the daemon, never inherit the lock: a restarted daemon can take it
while its containers keep running.
"""
from __future__ import annotations

import fcntl
import os

from engine.errors import Conflict

LOCK_NAME = "pydock.lock"


class DataRootInUse(Conflict):
    """Another live engine holds the data root."""


class DataRootLock:
    """The exclusive hold on a data root; released by `release` or when the process ends."""

    def __init__(self, data_root: str, program: str) -> None:
        os.makedirs(data_root, mode=0o710, exist_ok=True)
        self.path = os.path.join(data_root, LOCK_NAME)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 256, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise DataRootInUse(f"data root {data_root} is in use by {holder}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} ({program})\n".encode(), 0)
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
