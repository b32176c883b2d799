"""Network namespaces without fork: per-thread unshare/setns.

A network namespace is a property of a thread, so a short-lived thread can
create one (unshare + bind mount of /proc/thread-self/ns/net) or enter one
and open netlink sockets there, while the daemon's other threads stay in the
host's. Forking a helper instead (as pyroute2's netns module does) is unsafe
in a multi-threaded daemon: a child that inherits a held lock can hang.
"""
from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from engine.linux.mounts import mount, umount

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
MS_BIND = 4096
_libc = ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str, path: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)


def in_fresh_thread(fn: Callable[[], T]) -> T:
    """Run fn in a fresh OS thread, so namespace changes die with that thread (and no
    caller's running asyncio loop gets in the way of pyroute2's synchronous API)."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            out["error"] = e

    t = threading.Thread(target=run, name="pydock-netns", daemon=True)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def create(path: str) -> None:
    """A new, empty network namespace kept alive by a bind mount at `path`."""
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444))

    def make() -> None:
        _check(_libc.unshare(CLONE_NEWNET), "unshare", path)
        mount("/proc/thread-self/ns/net", path, "none", MS_BIND)

    try:
        in_fresh_thread(make)
    except BaseException:
        os.unlink(path)
        raise


def run_in(path: str, fn: Callable[[], T]) -> T:
    """fn() executed by a thread inside the namespace at `path` (netlink sockets it opens stay there)."""
    def enter() -> T:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _check(_libc.setns(fd, CLONE_NEWNET), "setns", path)
        finally:
            os.close(fd)
        return fn()

    return in_fresh_thread(enter)


def remove(path: str) -> None:
    umount(path)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
