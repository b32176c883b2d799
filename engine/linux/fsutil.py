"""Path handling inside a container root, where symlinks must not lead out.

A container's files are attacker-controlled: `/etc/passwd` may be a symlink
to `/../../etc/shadow`. Every path the engine opens inside a rootfs goes
through `secure_join`, which resolves symlinks as if `root` were `/`.
"""
from __future__ import annotations

import os
import stat

from engine.errors import InvalidParameter

MAX_SYMLINKS = 255


def secure_join(root: str, path: str, root_resolved: bool = False) -> str:
    """Resolve `path` inside `root` following symlinks, never leaving `root`.

    The result may not exist yet (its last components are joined literally),
    which is what creating files under a container path needs. `root_resolved`
    takes `root` as given: a process's `/proc/<pid>/root`, which realpath would
    turn into the host's "/".
    """
    root = root if root_resolved else os.path.realpath(root)
    pending = [p for p in path.split("/") if p]
    pending.reverse()
    current = ""
    links = 0
    while pending:
        part = pending.pop()
        if part == ".":
            continue
        if part == "..":
            current = current.rpartition("/")[0]
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


def make_linked_mount_point(root: str, destination: str, file: bool) -> None:
    """Make mount point `destination` inside `root` (a directory, or an empty `file`) where a symlink leads
    there, as runc does: crun (1.8) resolves such a symlink inside the root but makes nothing it leads to,
    and fails. A destination without symlinks is left to the runtime, which also mounts below its own
    mounts (/dev) and the container's other mounts, where nothing is to be made in the image's files."""
    root = os.path.realpath(root)
    target = secure_join(root, destination, root_resolved=True)
    literal = os.path.join(root, os.path.normpath("/" + destination).lstrip("/")).rstrip("/")
    if target == literal or os.path.lexists(target):
        return
    try:
        os.makedirs(os.path.dirname(target) if file else target, mode=0o755, exist_ok=True)
        if file:
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644))
    except OSError:
        pass  # e.g. a file where a directory must be: the runtime's error says so


def read_in_root(root: str, path: str, limit: int = 1 << 20) -> str:
    """Read a small text file of the container (e.g. /etc/passwd), '' when absent.

    Only a regular file is read: the image or an earlier run of the container
    may have put a FIFO (would block) or a device node (host data) there.
    """
    try:
        fd = os.open(secure_join(root, path), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, InvalidParameter):  # missing, unreadable, or a symlink loop
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        data = os.read(fd, limit)
    finally:
        os.close(fd)
    return data.decode("utf-8", "replace")


MAX_ID = 2**31 - 1


def _is_id(s: str) -> bool:
    return s.isascii() and s.isdigit()


def _entries(text: str, fields: int) -> list[list[str]]:
    """Lines of a passwd/group file with at least `fields` fields and numeric ids; malformed ones are skipped."""
    rows = [line.split(":") for line in text.splitlines()]
    return [r for r in rows if len(r) >= fields and _is_id(r[2]) and (fields < 7 or _is_id(r[3]))]


def _check_range(value: int) -> int:
    if value > MAX_ID:
        raise InvalidParameter(f"uids and gids must be in range 0-{MAX_ID}")
    return value


def resolve_user(root: str, user: str) -> tuple[int, int, list[int]]:
    """uid, gid and supplementary gids for Docker's `--user` forms against the image's files."""
    name, _, group = (user or "0").partition(":")
    passwd = _entries(read_in_root(root, "/etc/passwd"), 7)
    groups = _entries(read_in_root(root, "/etc/group"), 4)
    uid: int | None = None
    gid: int | None = None
    username = ""
    for entry in passwd:
        if entry[0] == name or (_is_id(name) and int(entry[2]) == int(name)):
            uid, gid, username = int(entry[2]), int(entry[3]), entry[0]
            break
    if uid is None:
        if not _is_id(name):
            raise InvalidParameter(f"unable to find user {name}: no matching entries in passwd file")
        uid, gid = _check_range(int(name)), 0
    if group:
        gid = None
        for entry in groups:
            if entry[0] == group or (_is_id(group) and int(entry[2]) == int(group)):
                gid = int(entry[2])
                break
        if gid is None:
            if not _is_id(group):
                raise InvalidParameter(f"unable to find group {group}: no matching entries in group file")
            gid = _check_range(int(group))
    extra = sorted({int(e[2]) for e in groups if username and username in e[3].split(",")}
                   - {gid}) if not group else []
    return uid, int(gid or 0), extra


def dir_size(path: str) -> int:
    """Bytes of the files under `path`, each hard-linked file counted once (as `du` does)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, dirs, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(root, name))
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total
