"""`VolumeOptions.Subpath` (API 1.45): a directory or file inside a volume mounted instead of the whole volume.

A volume's content belongs to the containers that write it, so a path inside
it is hostile: a component may be a symlink to `/`, or become one between a
check and runc's bind mount. The path is therefore walked with
`openat(O_NOFOLLOW)` one component at a time, and the inode reached is bind
mounted through its `/proc/self/fd` link onto a private staging path (under
the exec root), which is what runc mounts: the mount is of that very inode,
whatever the path turns into afterwards (dockerd's safepath does the same).
"""
from __future__ import annotations

import os
import posixpath
import shutil
import stat

from engine.errors import InvalidParameter
from engine.linux.mounts import MS_BIND, mount, umount

INVALID = "subpath must be a relative path within the volume"


def check(subpath: str) -> None:
    """The request's Subpath is relative and stays inside the volume (dockerd's filepath.IsLocal)."""
    cleaned = posixpath.normpath(subpath)
    if subpath.startswith("/") or cleaned == ".." or cleaned.startswith("../") or "\x00" in subpath:
        raise InvalidParameter(INVALID)


def stage(volume_dir: str, subpath: str, target: str, volume: str) -> str:
    """Bind `subpath` of the volume at `volume_dir` onto `target` (made here); returns `target`."""
    parts = [p for p in posixpath.normpath(subpath).split("/") if p not in ("", ".")]
    fd = os.open(volume_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for i, part in enumerate(parts):
            flags = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_DIRECTORY if i < len(parts) - 1 else 0)
            try:
                nxt = os.open(part, flags, dir_fd=fd)
            except OSError as e:
                raise InvalidParameter(f'cannot access path "{subpath}" in volume "{volume}": '
                                       f"{os.strerror(e.errno or 0).lower()}") from None
            os.close(fd)
            fd = nxt
        mode = os.fstat(fd).st_mode
        if stat.S_ISLNK(mode):
            raise InvalidParameter(f'cannot access path "{subpath}" in volume "{volume}": it is a symbolic link')
        os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
        if stat.S_ISDIR(mode):
            os.makedirs(target, mode=0o755, exist_ok=True)
        else:
            open(target, "a").close()
        mount(f"/proc/self/fd/{fd}", target, "", MS_BIND)
        return target
    finally:
        os.close(fd)


def release(directory: str) -> None:
    """Undo every `stage` under `directory` (one container's staging paths)."""
    if not os.path.isdir(directory):
        return
    for name in os.listdir(directory):
        umount(os.path.join(directory, name))
    shutil.rmtree(directory, ignore_errors=True)
