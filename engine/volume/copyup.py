"""Copy-up: an image directory copied into a new, empty volume with owners, modes, times, xattrs and links, never following a symlink."""
from __future__ import annotations

import contextlib
import os
import shutil
import stat

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def copy_tree(src: str, dst: str) -> None:
    """Copy an image directory into an empty volume: owners, modes, times, xattrs, hard links, devices.

    The source is read through directory fds with O_NOFOLLOW, so no symlink
    of the image is ever followed; symlinks are copied as symlinks.
    """
    sfd = os.open(src, _DIR_FLAGS)
    dfd = os.open(dst, _DIR_FLAGS)
    try:
        _copy_children(sfd, dfd, dfd, "", {})
        _copy_meta(sfd, dfd, os.fstat(sfd))
    finally:
        os.close(sfd)
        os.close(dfd)


def _copy_children(sfd: int, dfd: int, root_fd: int, prefix: str, links: dict[tuple[int, int], str]) -> None:
    for name in sorted(os.listdir(sfd)):
        st = os.stat(name, dir_fd=sfd, follow_symlinks=False)
        rel = f"{prefix}/{name}" if prefix else name
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            os.mkdir(name, 0o700, dir_fd=dfd)
            csfd, cdfd = os.open(name, _DIR_FLAGS, dir_fd=sfd), os.open(name, _DIR_FLAGS, dir_fd=dfd)
            try:
                _copy_children(csfd, cdfd, root_fd, rel, links)
                _copy_meta(csfd, cdfd, st)
            finally:
                os.close(csfd)
                os.close(cdfd)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(name, dir_fd=sfd), name, dir_fd=dfd)
            os.chown(name, st.st_uid, st.st_gid, dir_fd=dfd, follow_symlinks=False)
            os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dfd, follow_symlinks=False)
        elif stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in links:
                os.link(links[key], name, src_dir_fd=root_fd, dst_dir_fd=dfd, follow_symlinks=False)
                continue
            links[key] = rel
            _copy_file(sfd, dfd, name, st)
        elif stat.S_ISFIFO(mode) or ((stat.S_ISCHR(mode) or stat.S_ISBLK(mode)) and st.st_rdev != 0):
            os.mknod(name, stat.S_IFMT(mode) | 0o600, st.st_rdev, dir_fd=dfd)
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
            try:
                os.chown(name, st.st_uid, st.st_gid, dir_fd=dfd, follow_symlinks=False)
                os.chmod(f"/proc/self/fd/{fd}", stat.S_IMODE(mode))
                os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dfd, follow_symlinks=False)
            finally:
                os.close(fd)


def _copy_file(sfd: int, dfd: int, name: str, st: os.stat_result) -> None:
    src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=sfd)
    try:
        dst = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)
        try:
            with open(src, "rb", closefd=False) as fin, open(dst, "wb", closefd=False) as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)
            _copy_meta(src, dst, st)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _copy_meta(src_fd: int, dst_fd: int, st: os.stat_result) -> None:
    """Owner before mode (chown clears set-id bits), extended attributes, then times."""
    os.fchown(dst_fd, st.st_uid, st.st_gid)
    os.fchmod(dst_fd, stat.S_IMODE(st.st_mode))
    with contextlib.suppress(OSError):
        for attr in os.listxattr(src_fd):
            if not attr.startswith(("trusted.overlay.", "user.overlay.")):  # overlayfs' own marks
                with contextlib.suppress(OSError):
                    os.setxattr(dst_fd, attr, os.getxattr(src_fd, attr))
    os.utime(dst_fd, ns=(st.st_atime_ns, st.st_mtime_ns))
