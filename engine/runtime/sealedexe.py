"""OCI runtime binaries run from a sealed in-memory copy, made once per binary.

A container must never be able to overwrite the host's runtime binary through
`/proc/<pid>/exe` (CVE-2019-5736), so runc and crun protect it at every
invocation unless they already run from a fully sealed memfd (one nothing can
write, grow or shrink): crun bind-mounts itself read-only and unmounts it
again (a mount, a remount and a lazy unmount of the host's mount table per
call, about 1.5 ms, more while other mounts change), runc's `init` copies its
10 MB binary into a new memfd at every container start. Both accept a sealed
copy made beforehand instead: crun's and runc's own code says an admin may
bind-mount one over the binary. The daemon makes that copy once, runs its own
runtime calls from it and hands it to each monitor (engine/runtime/monitor.c),
whose `run` and `delete` calls are on every `docker run`'s path.

A copy follows its binary: when the file changes (a package upgrade) the next
call makes a new copy. Earlier copies stay open, as a call in another thread
may be starting from one and monitors started before hold their own; one
sealed file per upgrade within a daemon's life. Where memfds or seals are
unavailable, calls run the binary by its path, as before.
"""
from __future__ import annotations

import fcntl
import logging
import os
import threading

log = logging.getLogger(__name__)

# crun's and runc's test of a copy made for them: all four seals, no fewer
SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def seal_copy(path: str) -> int:
    """A sealed memfd (close-on-exec) holding the file at `path`; OSError if one cannot be made."""
    fd = os.memfd_create(os.path.basename(path), os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        with open(path, "rb") as src:
            size = os.fstat(src.fileno()).st_size
            sent = 0
            while sent < size:
                n = os.sendfile(fd, src.fileno(), None, size - sent)
                if n == 0:
                    raise OSError(f"{path} shrank while it was copied")
                sent += n
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, SEALS)
    except BaseException:
        os.close(fd)
        raise
    return fd


def exe_path(fd: int) -> str:
    """The path that executes sealed copy `fd` in the process holding it (the kernel opens it before
    close-on-exec descriptors close, so `fd` need not be inheritable)."""
    return f"/proc/self/fd/{fd}"


class SealedExecutables:
    """One sealed copy per runtime binary, made at its first use and again when the file changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._copies: dict[str, tuple[tuple[int, int, int, int], int]] = {}
        self._failed: set[str] = set()

    def fd(self, path: str) -> int | None:
        """The descriptor of `path`'s current sealed copy; None to run it by path (no copy can be made)."""
        try:
            ident = _identity(os.stat(path))
        except OSError:
            return None  # the call by path reports the missing binary in the runtime's usual words
        with self._lock:
            known = self._copies.get(path)
            if known is not None and known[0] == ident:
                return known[1]
            if path in self._failed:
                return None
            try:
                fd = seal_copy(path)
            except OSError as e:
                log.warning("running %s by path: no sealed copy (%s)", path, e)
                self._failed.add(path)
                return None
            self._copies[path] = (ident, fd)
            return fd
