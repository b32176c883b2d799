"""Writing tars of directory trees reached through fds, for `docker cp` on both sides.

The daemon archives container files (`GET /archive`, export) and the client
archives host files (`docker cp host -> container`) the same way Docker's
pkg/archive does: hard links kept as links, sockets skipped, and files read
through directory fds without following any symlink, so a tree that changes
while it is read can shorten the archive but never redirect it elsewhere.
"""
from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterator
from typing import IO

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def walk(dir_fd: int, prefix: str = "") -> Iterator[tuple[str, int, str, os.stat_result]]:
    """(relative path, parent fd, name, lstat) depth-first in name order, each directory before its
    contents (Go's filepath.Walk order); symlinks are never followed, vanished entries skipped."""
    for name in sorted(os.listdir(dir_fd)):
        rel = f"{prefix}/{name}" if prefix else name
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        yield rel, dir_fd, name, st
        if stat.S_ISDIR(st.st_mode):
            try:
                sub = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            except (FileNotFoundError, NotADirectoryError):
                continue
            try:
                yield from walk(sub, rel)
            finally:
                os.close(sub)


class _Exact:
    """A file cut or zero-padded to the size its tar header announced (it may change while read)."""

    def __init__(self, f: IO[bytes], size: int) -> None:
        self.f, self.left = f, size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.f.read(n)
        data += b"\0" * (n - len(data))
        self.left -= n
        return data



class TarWriter:
    """Tar entries read through directory fds; hard links kept as links, sockets skipped (as Docker)."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.links: dict[tuple[int, int], str] = {}

    def add_tree(self, parent_fd: int, name: str, arcname: str) -> None:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        self.add(parent_fd, name, arcname, st)
        if stat.S_ISDIR(st.st_mode):
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
            try:
                self.add_children(fd, arcname)
            finally:
                os.close(fd)

    def add_children(self, dir_fd: int, prefix: str) -> None:
        for rel, pfd, name, st in walk(dir_fd):
            self.add(pfd, name, f"{prefix.rstrip('/')}/{rel}" if prefix else rel, st)

    def add(self, parent_fd: int, name: str, arcname: str, st: os.stat_result) -> None:
        info = tarfile.TarInfo(arcname)
        info.mode, info.uid, info.gid, info.mtime = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime)
        kind = stat.S_IFMT(st.st_mode)
        if kind == stat.S_IFREG:
            self._add_file(parent_fd, name, info, st)
            return
        if kind == stat.S_IFDIR:
            info.type = tarfile.DIRTYPE
        elif kind == stat.S_IFLNK:
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink(name, dir_fd=parent_fd)
        elif kind in (stat.S_IFCHR, stat.S_IFBLK):
            info.type = tarfile.CHRTYPE if kind == stat.S_IFCHR else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif kind == stat.S_IFIFO:
            info.type = tarfile.FIFOTYPE
        else:
            return
        self.tar.addfile(info)

    def _add_file(self, parent_fd: int, name: str, info: tarfile.TarInfo, st: os.stat_result) -> None:
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in self.links:
            info.type, info.linkname = tarfile.LNKTYPE, self.links[key]
            self.tar.addfile(info)
            return
        try:
            fd = os.open(name, _FILE_FLAGS, dir_fd=parent_fd)
        except OSError:
            return  # replaced or removed since it was listed
        with os.fdopen(fd, "rb") as f:
            now = os.fstat(fd)
            if not stat.S_ISREG(now.st_mode):
                return
            info.size = now.st_size
            self.tar.addfile(info, _Exact(f, info.size))
        if st.st_nlink > 1:
            self.links[key] = info.name

