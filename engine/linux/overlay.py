"""The two ways of stacking layers into one directory: kernel overlayfs and fuse-overlayfs.

Kernel overlayfs ("overlay2", as Docker names its driver) needs root, or in a
user namespace Linux 5.11 and later (mounted with `userxattr`, so its marks
are `user.overlay.*` xattrs). On older kernels a rootless engine uses
`fuse-overlayfs` instead, as rootless Podman and Docker do: the same layer
directories, served by one FUSE process per mount. That process
daemonizes once the mount is in place (its own session, reparented to init),
so it outlives the daemon as a container's monitor does; unmounting ends it.
`docker info` shows which is in use ("overlay2" or "fuse-overlayfs").

Both read the layers as the layer store writes them (0/0 character-device
whiteouts, the `user.overlay.opaque` xattr); what each writes into an upper
directory differs, and `engine.image.upperdir` reads both.
`choose` picks one at daemon start: the configured one, else kernel overlayfs
when a probe mount works where the data lives, else fuse-overlayfs.
"""
from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from engine.linux import mounts
from engine.linux.proc import running
from pydock_common.userns import in_user_namespace

KERNEL = "overlay2"
FUSE = "fuse-overlayfs"
DRIVERS = (KERNEL, FUSE)
FUSE_MOUNT_TIMEOUT = 30.0
FUSE_EXIT_TIMEOUT = 5.0  # how long an unmounted fuse-overlayfs may take to notice and exit


class StorageError(Exception):
    """The storage driver asked for (or any, when none is) cannot be used here; the message says why."""


class Overlay(Protocol):
    """Mounts a layer stack at a directory; `name` is the storage driver `docker info` shows."""

    name: str

    def mount(self, lowers: list[str], upper: str, work: str, target: str, volatile: bool = False) -> None:
        """`lowers` (top first) under the writable `upper` at `target`. A `volatile` upper need not survive a
        host crash (its container is removed when it stops, as podman mounts --rm containers): the mount
        may then skip syncing it, at fsync and at unmount."""
        ...

    def mount_readonly(self, lowers: list[str], target: str) -> None:
        """`lowers` (top first), read-only, at `target`."""
        ...

    def mounted(self, target: str) -> bool:
        """Whether `target` holds a working mount."""
        ...

    def unmount(self, target: str) -> None:
        """Undo a mount; an unmounted target is not an error."""
        ...


class KernelOverlay:
    """overlayfs of the kernel."""

    name = KERNEL

    @staticmethod
    def _options(opts: str) -> str:
        """Inside a user namespace (rootless) overlayfs keeps its marks in user.* xattrs: trusted.* needs host root."""
        return opts + ",userxattr" if in_user_namespace() else opts

    def __init__(self) -> None:
        self._volatile = True  # until the kernel refuses the option (before Linux 5.10)

    def mount(self, lowers: list[str], upper: str, work: str, target: str, volatile: bool = False) -> None:
        """A volatile mount spares the unmount a sync of the whole upper filesystem (about 2 ms per
        `docker run --rm` here, and a disk cache flush)."""
        opts = self._options(f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}")
        if volatile and self._volatile:
            # the kernel refuses to mount again what a volatile mount left its mark in; the mark is for
            # uppers that must outlive a crash, which this one need not
            shutil.rmtree(os.path.join(work, "work", "incompat"), ignore_errors=True)
            try:
                mounts.mount("overlay", target, "overlay", 0, opts + ",volatile")
                return
            except OSError as e:
                if e.errno != errno.EINVAL:
                    raise
            mounts.mount("overlay", target, "overlay", 0, opts)  # it was the option: an older kernel
            self._volatile = False
            return
        mounts.mount("overlay", target, "overlay", 0, opts)

    def mount_readonly(self, lowers: list[str], target: str) -> None:
        mounts.mount("overlay", target, "overlay", mounts.MS_RDONLY, self._options("lowerdir=" + ":".join(lowers)))

    def mounted(self, target: str) -> bool:
        return mounts.is_mountpoint(target)

    def unmount(self, target: str) -> None:
        mounts.umount(target)


class FuseOverlay:
    """fuse-overlayfs: a FUSE server per mount, started here, ended by unmounting."""

    name = FUSE

    def __init__(self, binary: str) -> None:
        self.binary = binary

    def mount(self, lowers: list[str], upper: str, work: str, target: str, volatile: bool = False) -> None:
        """fuse-overlayfs syncs nothing at unmount: a volatile mount is an ordinary one."""
        self._serve(f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}", target)

    def mount_readonly(self, lowers: list[str], target: str) -> None:
        self._serve("ro,lowerdir=" + ":".join(lowers), target)

    def _serve(self, opts: str, target: str) -> None:
        """Run fuse-overlayfs, which returns once the mount is there and leaves its server running."""
        try:
            proc = subprocess.run([self.binary, "-o", opts, target], stdin=subprocess.DEVNULL, capture_output=True,
                                  cwd="/", timeout=FUSE_MOUNT_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise OSError(errno.ETIMEDOUT, f"fuse-overlayfs on {target}: no mount after {FUSE_MOUNT_TIMEOUT:.0f} s") \
                from None
        if proc.returncode != 0:
            said = proc.stderr.decode(errors="replace").strip().splitlines()
            raise OSError(errno.EIO, f"fuse-overlayfs on {target}: {said[-1] if said else proc.returncode}")

    def mounted(self, target: str) -> bool:
        """A mount whose server died answers ENOTCONN: it is taken down, so the next start mounts afresh."""
        if not mounts.is_mountpoint(target):
            return False
        try:
            os.stat(target)
        except OSError as e:
            if e.errno != errno.ENOTCONN:
                raise
            mounts.umount(target)
            return False
        return True

    def unmount(self, target: str) -> None:
        """Unmount, then wait for the server to exit (killing one a lingering user keeps alive): none is left."""
        servers = _servers(os.path.realpath(target))
        mounts.umount(target)
        deadline = time.monotonic() + FUSE_EXIT_TIMEOUT
        while servers and time.monotonic() < deadline:
            servers = [pid for pid in servers if running(pid)]
            if servers:
                time.sleep(0.01)
        for pid in servers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _servers(target: str) -> list[int]:
    """The fuse-overlayfs processes of this user serving `target` (their last argument)."""
    out = []
    uid = os.getuid()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid != uid:
                continue
            with open(f"/proc/{name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        argv = [a for a in argv if a]
        if argv and os.path.basename(argv[0]) == FUSE.encode() and argv[-1] == target.encode():
            out.append(int(name))
    return out


# ---- choosing one ------------------------------------------------------------------
def kernel_overlay_error(scratch: str) -> str:
    """Why kernel overlayfs cannot be mounted by this process on the filesystem of `scratch` ("" if it can)."""
    base = tempfile.mkdtemp(dir=scratch, prefix=".overlay-probe-")
    try:
        lower, upper, work, merged = (os.path.join(base, d) for d in ("lower", "upper", "work", "merged"))
        for d in (lower, upper, work, merged):
            os.mkdir(d)
        try:
            KernelOverlay().mount([lower], upper, work, merged)
        except OSError as e:
            return e.strerror or str(e)
        mounts.umount(merged)
        return ""
    finally:
        shutil.rmtree(base, ignore_errors=True)


def choose(requested: str, scratch: str) -> str:
    """The storage driver to use: `requested` if it works here, or with "" the kernel's, else fuse-overlayfs.

    Raises StorageError naming what is missing.
    """
    if requested not in ("", *DRIVERS):
        raise StorageError(f"unsupported storage driver {requested!r} (supported: {', '.join(DRIVERS)})")
    if requested != FUSE:
        why = kernel_overlay_error(scratch)
        if not why:
            return KERNEL
        if requested == KERNEL:
            raise StorageError(f"overlay2: the kernel's overlayfs cannot be mounted here ({why})")
    if shutil.which(FUSE) is None:
        raise StorageError("fuse-overlayfs is missing (Debian package fuse-overlayfs)"
                           + ("" if requested else ", and the kernel's overlayfs cannot be mounted here"))
    return FUSE


def for_driver(name: str) -> Overlay:
    """The mounter of a storage driver `choose` returned."""
    return FuseOverlay(shutil.which(FUSE) or f"/usr/bin/{FUSE}") if name == FUSE else KernelOverlay()


# ---- views of a layer stack --------------------------------------------------------
@contextmanager
def readonly_root(overlay: Overlay, lowers: list[str], workdir: str) -> Iterator[str]:
    """An image's merged rootfs, read-only; a one-layer image is its layer directory itself."""
    if len(lowers) == 1:
        yield lowers[0]
        return
    target = tempfile.mkdtemp(dir=workdir, prefix="ro-")
    overlay.mount_readonly(lowers, target)
    try:
        yield target
    finally:
        overlay.unmount(target)
        os.rmdir(target)


@contextmanager
def writable_root(overlay: Overlay, lowers: list[str], workdir: str) -> Iterator[tuple[str, str]]:
    """(merged, upper): an overlay on the image whose upperdir collects one step's changes."""
    base = tempfile.mkdtemp(dir=workdir, prefix="rw-")
    upper, work, merged = (os.path.join(base, d) for d in ("upper", "work", "merged"))
    for d in (upper, work, merged):
        os.mkdir(d)
    overlay.mount(lowers, upper, work, merged)
    try:
        yield merged, upper
    finally:
        overlay.unmount(merged)
