"""mount(2)/umount2(2) through libc (so starting a container spawns no extra process); overlays are in overlay.py."""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]

MNT_DETACH = 2
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
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
    """Whether a mount's root is at `path`: a directory is one when its mount differs from its parent's
    (two opens and two small reads, where the mount table grows with every running container); a file,
    or what cannot be opened so, is looked up in the mount table."""
    try:
        here, parent = _mount_of(path), _mount_of(os.path.join(path, ".."))
        return here[0] != parent[0] or here == parent  # "/" is its own parent
    except FileNotFoundError:
        return False
    except OSError:
        pass
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def _mount_of(path: str) -> tuple[int, int, int]:
    """The ID of the mount `path` is on (its open file's mnt_id), and the file's device and inode."""
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        with open(f"/proc/self/fdinfo/{fd}") as f:
            for line in f:
                if line.startswith("mnt_id:"):
                    return int(line.split()[1]), st.st_dev, st.st_ino
    finally:
        os.close(fd)
    raise OSError(errno.ENOTSUP, f"no mnt_id for {path}")


MEMORY_FILESYSTEMS = frozenset({"tmpfs", "ramfs"})


def filesystem_type(path: str) -> str:
    """The type of the filesystem `path` lies on (mountinfo's field after the separator), by the longest
    mount point that holds its real path."""
    path = os.path.realpath(path)
    best, kind = "", ""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point = fields[4]
            inside = path == point or path.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):  # a later mount on the same point hides an earlier one
                best, kind = point, fields[fields.index("-") + 1]
    return kind


def holds_files(path: str) -> bool:
    """Whether anything but (nested) empty directories is below `path`."""
    for _, _, files in os.walk(path):
        if files:
            return True
    return False


def keep_in_memory(path: str, mode: int) -> bool:
    """Mount a tmpfs at directory `path` (created with `mode` if missing) unless it is on a memory
    filesystem already or holds files; whether it mounted one.

    For state that must not outlive the boot and is written on hot paths: a host whose /run is on disk
    would otherwise have every container start create its files on disk. A directory holding files (of
    containers still running, say) is left as it is, since a mount would hide them.
    """
    os.makedirs(path, mode=mode, exist_ok=True)
    if filesystem_type(path) in MEMORY_FILESYSTEMS or holds_files(path):
        return False
    mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, f"mode={mode:o}")
    return True
