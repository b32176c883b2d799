"""Which user namespace this process runs in: the host's, or a rootless engine's (engine/rootless).

A few things the engine does on disk depend on it, wherever the code runs:
overlayfs' xattr names, whether other owners than root exist at all.
"""
from __future__ import annotations

import os

_INIT_USER_NS_INODE = 0xEFFFFFFD  # the kernel's fixed inode number of the initial user namespace


def in_user_namespace() -> bool:
    """Whether this process runs in a user namespace other than the host's."""
    try:
        return os.stat("/proc/self/ns/user").st_ino != _INIT_USER_NS_INODE
    except OSError:
        return False


def single_id_namespace() -> bool:
    """This process runs in a user namespace that maps one user ID only (rootless without /etc/subuid ranges)."""
    try:
        with open("/proc/self/uid_map") as f:
            return sum(int(line.split()[2]) for line in f if line.strip()) == 1
    except (OSError, ValueError, IndexError):
        return False
