"""Which cgroups a rootless engine may give its containers, and so which limits it can apply.

Creating cgroups needs write access to the cgroup tree. Root has it; a user
has it only where systemd delegates a cgroup v2 subtree to the user's
service manager (user@UID.service, `Delegate=yes`), and then only for the
controllers delegated there (by default memory and pids; cpu, cpuset and io
need `Delegate=cpu cpuset io memory pids`). On cgroup v1 nothing is ever
delegated: containers share the user's cgroup and no limit can be applied.
Like rootless Docker and Podman, such a daemon runs containers without
cgroups; unlike them it refuses a limit it cannot apply instead of dropping it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

CGROUP_ROOT = "/sys/fs/cgroup"
V1_REASON = "rootless mode on cgroup v1 cannot apply resource limits"
UNDELEGATED_REASON = ("rootless mode without a cgroup v2 subtree delegated by systemd (user@UID.service) "
                      "cannot apply resource limits")


@dataclass(frozen=True)
class CgroupAccess:
    """Where containers' cgroups go ("" for nowhere), the controllers they may use, and why others are missing."""

    parent: str
    controllers: frozenset[str]
    reason: str


def rootless_access(root: str = CGROUP_ROOT, self_cgroup: str = "/proc/self/cgroup",
                    uid: int | None = None) -> CgroupAccess:
    """What this user may do with cgroups: a "pydock" subtree of its delegated user@UID.service, or nothing."""
    if not os.path.exists(os.path.join(root, "cgroup.controllers")):
        return CgroupAccess("", frozenset(), V1_REASON)
    uid = os.getuid() if uid is None else uid
    try:
        with open(self_cgroup) as f:
            own = next((line.strip()[3:] for line in f if line.startswith("0::")), "")
    except OSError:
        own = ""
    service = f"user@{uid}.service"
    parts = own.split("/")
    if service not in parts:
        return CgroupAccess("", frozenset(), UNDELEGATED_REASON)
    base = "/".join(parts[:parts.index(service) + 1])
    directory = os.path.join(root, base.lstrip("/"))
    if not os.access(os.path.join(directory, "cgroup.subtree_control"), os.W_OK):
        return CgroupAccess("", frozenset(), UNDELEGATED_REASON)
    try:
        with open(os.path.join(directory, "cgroup.controllers")) as f:
            controllers = frozenset(f.read().split())
    except OSError:
        controllers = frozenset()
    # relative to the cgroup root, as EngineConfig.cgroup_parent is
    return CgroupAccess(f"{base.lstrip('/')}/pydock", controllers,
                        f"the cgroup subtree systemd delegated to this user ({base}) does not have that controller "
                        "(see systemd's Delegate= setting for user@.service)")
