"""The user namespace's ID mapping: the user becomes root, its subordinate IDs the other users.

/etc/subuid and /etc/subgid (shadow-utils' format, `name-or-id:start:count`
per line) grant each user ranges of host IDs that the setuid helpers
`newuidmap`/`newgidmap` will map into a namespace the user owns. The map
pydock asks for is Podman's: ID 0 inside is the user itself (so files the
engine writes as "root" belong to the user on the host), IDs 1..N are the
subordinate ranges in file order. A user without entries gets the one ID it
may always map, its own: every file in a layer then belongs to root in the
container, and anything asking for another user fails (see `single_id`).
"""
from __future__ import annotations

from dataclasses import dataclass

SUBUID = "/etc/subuid"
SUBGID = "/etc/subgid"


@dataclass(frozen=True)
class IdRange:
    """Host IDs `start` .. `start + count - 1`."""

    start: int
    count: int


@dataclass(frozen=True)
class Mapping:
    """One line of /proc/<pid>/uid_map: `inside` .. maps to host `outside` .., `count` IDs."""

    inside: int
    outside: int
    count: int


def subordinate_ranges(path: str, user: str, uid: int) -> list[IdRange]:
    """The ranges `path` grants to `user` (by name or by numeric ID), in file order; none if unreadable."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) != 3 or parts[0] not in (user, str(uid)):
            continue
        try:
            start, count = int(parts[1]), int(parts[2])
        except ValueError:
            continue
        if start >= 0 and count > 0:
            out.append(IdRange(start, count))
    return out


def namespace_map(own: int, ranges: list[IdRange]) -> list[Mapping]:
    """0 -> `own`, then each range in turn from ID 1 up."""
    out = [Mapping(0, own, 1)]
    inside = 1
    for r in ranges:
        out.append(Mapping(inside, r.start, r.count))
        inside += r.count
    return out


def helper_args(mappings: list[Mapping]) -> list[str]:
    """The triples `newuidmap PID ...` and `newgidmap PID ...` take."""
    return [str(n) for m in mappings for n in (m.inside, m.outside, m.count)]


def single_id(mappings: list[Mapping]) -> bool:
    """Only the user's own ID is mapped: no other owner can exist in the namespace."""
    return sum(m.count for m in mappings) == 1
