"""mount(2)/umount2(2) through libc (so starting a container spawns no extra process), and overlay views of layer stacks."""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from pydock_common.userns import in_user_namespace

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]

MNT_DETACH = 2
MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384


def mount(source: str, target: str, fstype: str, flags: int = 0, data: str = "") -> None:
    if _libc.mount(source.encode(), target.encode(), fstype.encode(), flags, data.encode() or None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {fstype} on {target}: {os.strerror(err)}")


def umount(target: str) -> None:
    """Detach-unmount; an already unmounted target is not an error."""
    if _libc.umount2(target.encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err in (errno.EINVAL, errno.ENOENT):
            return
        raise OSError(err, f"umount {target}: {os.strerror(err)}")


def bind(source: str, target: str, readonly: bool) -> None:
    """A recursive bind mount of `source` on `target`, read-only if asked (a second, remounting call)."""
    mount(source, target, "", MS_BIND | MS_REC)
    if readonly:
        try:
            mount("", target, "", MS_BIND | MS_REMOUNT | MS_RDONLY)
        except OSError:
            umount(target)
            raise


def is_mountpoint(path: str) -> bool:
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def _overlay_options(opts: str) -> str:
    """Inside a user namespace (rootless) overlayfs keeps its marks in user.* xattrs: trusted.* needs host root."""
    return opts + ",userxattr" if in_user_namespace() else opts


def mount_overlay(lowers: list[str], upper: str, work: str, target: str) -> None:
    opts = f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}"
    mount("overlay", target, "overlay", 0, _overlay_options(opts))


# ---- overlay views of a layer stack --------------------------------------------
@contextmanager
def readonly_root(lowers: list[str], workdir: str) -> Iterator[str]:
    """An image's merged rootfs, read-only; a one-layer image is its layer directory itself."""
    if len(lowers) == 1:
        yield lowers[0]
        return
    target = tempfile.mkdtemp(dir=workdir, prefix="ro-")
    mount("overlay", target, "overlay", MS_RDONLY, _overlay_options("lowerdir=" + ":".join(lowers)))
    try:
        yield target
    finally:
        umount(target)
        os.rmdir(target)


@contextmanager
def writable_root(lowers: list[str], workdir: str) -> Iterator[tuple[str, str]]:
    """(merged, upper): an overlay on the image whose upperdir collects one step's changes."""
    base = tempfile.mkdtemp(dir=workdir, prefix="rw-")
    upper, work, merged = (os.path.join(base, d) for d in ("upper", "work", "merged"))
    for d in (upper, work, merged):
        os.mkdir(d)
    mount_overlay(lowers, upper, work, merged)
    try:
        yield merged, upper
    finally:
        umount(merged)
