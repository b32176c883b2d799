"""The OCI runtimes a container can run under: runc (Docker's default) and crun.

Both take the same bundle and the same command line for what pydock asks of
them (run --detach, exec --detach, delete, kill, pause, resume, update, ps,
state), so the monitor and the daemon drive either by its path and state
root. They differ in speed: crun's calls for a start and removal take about
half of runc's time here and, unlike runc, crun accepts a seccomp filter compiled
beforehand (seccompbpf.py), which takes the profile's compilation off every
start. So crun is the default where it can run (EngineConfig.chosen_runtime),
runc, Docker's default, elsewhere; `docker run --runtime` and `pydockd
--default-runtime` (daemon.json `default-runtime`) choose.

crun (1.8, Debian 12) refuses a hybrid cgroup layout whose cgroup v2 tree
has controllers ("cgroups in hybrid mode not supported, drop all controllers
from cgroupv2"): on such a host it is not offered, and `why_unusable` says
why. It also fails to exec into a container without a cgroup of its own,
so a rootless daemon without delegated cgroups does not offer it either
(EngineConfig.why_unusable).
"""
from __future__ import annotations

import os
import shutil
from typing import Any

from engine.runtime import seccompbpf

RUNC = "runc"
CRUN = "crun"
NAMES = (RUNC, CRUN)
_HYBRID_V2 = "/sys/fs/cgroup/unified/cgroup.controllers"


def find(name: str) -> str:
    """The runtime's binary on PATH (or where Debian installs it); "" when it is not installed."""
    return shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.path.exists(p)), "")


def hybrid_v2_controllers() -> list[str]:
    """The controllers bound to the cgroup v2 tree of a hybrid v1/v2 layout (none on pure v1 or v2)."""
    try:
        with open(_HYBRID_V2) as f:
            return f.read().split()
    except OSError:
        return []


def why_unusable(name: str, path: str) -> str:
    """Why runtime `name` (at `path`) cannot run containers on this host; "" when it can."""
    if not path:
        return f"{name} is not installed (Debian package {name})"
    if name == CRUN:
        controllers = hybrid_v2_controllers()
        if controllers:
            return (f"crun does not run on a hybrid cgroup v1/v2 layout whose v2 tree has controllers "
                    f"({' '.join(controllers)} in /sys/fs/cgroup/unified); mount them as v1 hierarchies, "
                    f"or use runc")
    return ""


def usable_crun() -> str:
    """crun's path when it is installed and can run here, else "" (the engine's default for offering it)."""
    path = find(CRUN)
    return path if path and not why_unusable(CRUN, path) else ""


def prepare_spec(name: str, spec: dict[str, Any]) -> None:
    """Adjust an OCI spec for runtime `name` in place: for crun, its seccomp filter compiled once per
    profile (the section stays, for `docker inspect`-like readers; crun then skips compiling it)."""
    section = spec.get("linux", {}).get("seccomp")
    if name != CRUN or not section:
        return
    bpf = seccompbpf.precompiled(section)
    if bpf is not None:
        spec.setdefault("annotations", {})[seccompbpf.ANNOTATION] = bpf
