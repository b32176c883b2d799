"""How a container's root filesystem is assembled from its image layers and its own upper directory.

The one root-only step on the create/start path besides runc: an overlay
mount (kernel overlayfs or fuse-overlayfs, engine/linux/overlay.py). It sits
behind this small boundary so the composition root can pick plain
directories when the engine runs on the in-memory runtime (tests without
root), while the daemon keeps overlays.
"""
from __future__ import annotations

import os
import shutil
from typing import Protocol

from engine.linux import mounts
from engine.linux.overlay import Overlay


class RootFS(Protocol):
    @property
    def layer_owner(self) -> tuple[int, int] | None:
        """Who owns the files of unpacked image layers; None: the owners their tars name, as Docker keeps them."""
        ...

    def mounted(self, target: str) -> bool:
        """Whether `target` holds an assembled root filesystem."""
        ...

    def mount(self, lowers: list[str], upper: str, work: str, target: str, volatile: bool = False) -> None:
        """Assemble `lowers` (top first) under `upper` at `target`; `volatile`: see Overlay.mount."""
        ...

    def unmount(self, target: str) -> None:
        """Undo `mount`; an unassembled target is not an error."""
        ...

    def bind(self, source: str, target: str, readonly: bool) -> None:
        """Show the host directory `source` at `target` inside an assembled root (a stopped container's
        volumes and binds, for `docker cp`)."""
        ...

    def unbind(self, target: str) -> None:
        """Undo `bind`."""
        ...


class OverlayRootFS:
    """The real one: an overlay of the storage driver in use, needs root (in a user namespace, rootless)."""

    layer_owner = None

    def __init__(self, overlay: Overlay) -> None:
        self.overlay = overlay

    def mounted(self, target: str) -> bool:
        return self.overlay.mounted(target)

    def mount(self, lowers: list[str], upper: str, work: str, target: str, volatile: bool = False) -> None:
        self.overlay.mount(lowers, upper, work, target, volatile)

    def unmount(self, target: str) -> None:
        self.overlay.unmount(target)

    def bind(self, source: str, target: str, readonly: bool) -> None:
        mounts.bind(source, target, readonly)

    def unbind(self, target: str) -> None:
        mounts.umount(target)


class CopiedRootFS:
    """Plain directories for the in-memory runtime: the layers copied into `target`, bottom first."""

    def __init__(self) -> None:
        # Without root, files cannot be given away (fchown to another user is EPERM), so an image whose files
        # belong to root or any other user could not even load: its layers' files are the engine's own instead.
        self.layer_owner = None if os.geteuid() == 0 else (os.geteuid(), os.getegid())
        self._mounted: set[str] = set()
        self._binds: dict[str, tuple[str, bool]] = {}  # target -> (source, readonly)

    def mounted(self, target: str) -> bool:
        return os.path.realpath(target) in self._mounted

    def mount(self, lowers: list[str], upper: str, work: str, target: str, volatile: bool = False) -> None:
        """Copies: nothing to sync either way."""
        for layer in [*reversed(lowers), upper]:
            shutil.copytree(layer, target, symlinks=True, dirs_exist_ok=True)
        self._mounted.add(os.path.realpath(target))

    def unmount(self, target: str) -> None:
        if os.path.realpath(target) in self._mounted:
            self._mounted.discard(os.path.realpath(target))
            shutil.rmtree(target, ignore_errors=True)
            os.makedirs(target, exist_ok=True)

    def bind(self, source: str, target: str, readonly: bool) -> None:
        """A copy stands in for the bind; `unbind` copies changes back (readonly ones are dropped)."""
        shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
        self._binds[os.path.realpath(target)] = (source, readonly)

    def unbind(self, target: str) -> None:
        source, readonly = self._binds.pop(os.path.realpath(target), ("", True))
        if source and not readonly:
            shutil.copytree(target, source, symlinks=True, dirs_exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        os.makedirs(target, exist_ok=True)
