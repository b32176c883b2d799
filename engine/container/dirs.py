"""Containers' directories on the data root, recycled from removed containers.

A container's directory holds `upper` and `work` (its overlay's writable
layer and work directory) and `merged` (the mount point). On ext4 without a
journal (this development machine's root filesystem) every new inode skips
those freed in the last half minute (`recently_deleted` in the kernel's
fs/ext4/ialloc.c), so a `docker run --rm` that made and removed four
directories paid for them twice, the more the more containers came and went.
A removed container's directory is kept instead, emptied, and renamed into
place by a later create: only `upper`, which the container could change
(its mode, owner, extended attributes), is made anew.
"""
from __future__ import annotations

import os
import secrets
import shutil
import threading

from engine.linux.mounts import is_mountpoint

SPARES = 8  # emptied directories kept at most: a burst of removals keeps no more than a burst of creates takes


class ContainerDirs:
    def __init__(self, spares_dir: str) -> None:
        self.spares_dir = spares_dir
        self._spares: list[str] = []
        self._lock = threading.Lock()
        # what an earlier daemon kept is not known to be empty: gone before the first create
        for name in os.listdir(spares_dir):
            shutil.rmtree(os.path.join(spares_dir, name), ignore_errors=True)

    def make(self, cdir: str) -> None:
        """A new container's directory (mode 0710) with empty `upper`, `work` and `merged`."""
        with self._lock:
            spare = self._spares.pop() if self._spares else None
        if spare is None or not _renamed(os.path.join(self.spares_dir, spare), cdir):
            os.mkdir(cdir, 0o710)
            os.mkdir(os.path.join(cdir, "work"))
            os.mkdir(os.path.join(cdir, "merged"))
        os.mkdir(os.path.join(cdir, "upper"))

    def recycle(self, cdir: str) -> bool:
        """Keep the unmounted directory of a removed container for a later `make`, emptied; False if it is
        not kept (enough are, or it holds what a container's directory never does): the caller removes it."""
        with self._lock:
            if len(self._spares) >= SPARES:
                return False
        try:
            if not _emptied(cdir):
                return False
            name = secrets.token_hex(8)
            os.rename(cdir, os.path.join(self.spares_dir, name))
        except OSError:
            return False
        with self._lock:
            self._spares.append(name)
        return True


def _renamed(source: str, target: str) -> bool:
    try:
        os.rename(source, target)
        return True
    except OSError:  # removed behind the daemon's back: a new directory is made instead
        return False


def _emptied(cdir: str) -> bool:
    """Empty `cdir` down to an empty `work/work` and `merged`: its files (the log), `upper`, and what the
    overlay mount made in `work` but the `work` directory it makes again at every mount."""
    merged = os.path.join(cdir, "merged")
    if is_mountpoint(merged) or os.listdir(merged):
        return False
    for entry in os.scandir(cdir):
        if entry.name == "upper":
            shutil.rmtree(entry.path)
        elif entry.name == "work":
            for inner in os.scandir(entry.path):
                if inner.name == "work" and inner.is_dir(follow_symlinks=False) and not os.listdir(inner.path):
                    continue
                if inner.is_dir(follow_symlinks=False):
                    shutil.rmtree(inner.path)
                else:
                    os.unlink(inner.path)
        elif entry.name != "merged":
            if entry.is_dir(follow_symlinks=False):
                return False
            os.unlink(entry.path)
    return True
