"""Path handling inside a container root, where symlinks must not lead out.

A container's files are attacker-controlled: `/etc/passwd` may be a symlink
to `/../../etc/shadow`. Every path the engine opens inside a rootfs goes
through `secure_join`, which resolves symlinks as if `root` were `/`.
"""
from __future__ import annotations

import os

from .errors import InvalidParameter

MAX_SYMLINKS = 255


def secure_join(root: str, path: str) -> str:
    """Resolve `path` inside `root` following symlinks, never leaving `root`.

    The result may not exist yet (its last components are joined literally),
    which is what creating files under a container path needs.
    """
    root = os.path.realpath(root)
    pending = [p for p in path.split("/") if p]
    pending.reverse()
    current = ""
    links = 0
    while pending:
        part = pending.pop()
        if part == ".":
            continue
        if part == "..":
            current = os.path.dirname(current) if current else ""
            continue
        candidate = f"{current}/{part}"
        full = root + candidate
        try:
            if os.path.islink(full):
                links += 1
                if links > MAX_SYMLINKS:
                    raise InvalidParameter(f"too many levels of symbolic links in {path[:200]}")
                target = os.readlink(full)
                if target.startswith("/"):
                    current = ""
                parts = [p for p in target.split("/") if p]
                pending.extend(reversed(parts))
                continue
        except OSError:
            pass
        current = candidate
    return root + current if current else root


def read_in_root(root: str, path: str, limit: int = 1 << 20) -> str:
    """Read a small text file of the container (e.g. /etc/passwd), '' when absent."""
    try:
        with open(secure_join(root, path), "rb") as f:
            return f.read(limit).decode("utf-8", "replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError):
        return ""


def resolve_user(root: str, user: str) -> tuple[int, int, list[int]]:
    """uid, gid and supplementary gids for Docker's `--user` forms against the image's files."""
    name, _, group = (user or "0").partition(":")
    passwd = [line.split(":") for line in read_in_root(root, "/etc/passwd").splitlines() if line.count(":") >= 6]
    groups = [line.split(":") for line in read_in_root(root, "/etc/group").splitlines() if line.count(":") >= 3]
    uid: int | None = None
    gid: int | None = None
    username = ""
    for entry in passwd:
        if entry[0] == name or (name.isdigit() and entry[2] == name):
            uid, gid, username = int(entry[2]), int(entry[3]), entry[0]
            break
    if uid is None:
        if not name.isdigit():
            raise InvalidParameter(f"unable to find user {name}: no matching entries in passwd file")
        uid, gid = int(name), 0
    if group:
        gid = None
        for entry in groups:
            if entry[0] == group or (group.isdigit() and entry[2] == group):
                gid = int(entry[2])
                break
        if gid is None:
            if not group.isdigit():
                raise InvalidParameter(f"unable to find group {group}: no matching entries in group file")
            gid = int(group)
    extra = sorted({int(e[2]) for e in groups if username and username in e[3].split(",") and e[2].isdigit()}
                   - {gid}) if not group else []
    return uid, int(gid or 0), extra
