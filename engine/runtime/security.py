"""Docker's security options: --security-opt, --device, --group-add and --privileged devices.

Create validates (400 with dockerd's messages); start turns the record into
SpecOptions fields. Host devices are looked up at start, as in Docker, so a
container created for a device that is plugged in later still starts.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Any

from engine.errors import InternalError, InvalidParameter
from engine.linux.fsutil import read_in_root
from engine.runtime import seccomp
from engine.runtime.spec import MASKED_PATHS, READONLY_PATHS
from engine.types.container import DeviceMapping, HostConfig

# /dev entries a privileged container does not get from the host (Docker's HostDevices)
_SKIP_DEV_DIRS = {"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"}
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


@dataclass
class SecurityOptions:
    seccomp: str = ""  # "" or "builtin": Docker's default profile; "unconfined"; else a JSON profile
    no_new_privileges: bool = False
    apparmor: str = ""


def parse_security_opts(opts: list[str]) -> SecurityOptions:
    """dockerd's parseSecurityOpt, with its error messages."""
    out = SecurityOptions()
    for opt in opts:
        if opt == "no-new-privileges":
            out.no_new_privileges = True
            continue
        if opt == "disable":
            continue  # an SELinux label option: no SELinux here
        sep = "=" if "=" in opt else ":"
        key, found, value = opt.partition(sep)
        if not found:
            raise InvalidParameter(f'invalid --security-opt 1: "{opt}"')
        if key == "seccomp":
            out.seccomp = value
        elif key == "apparmor":
            out.apparmor = value  # no AppArmor on this host: recorded and ignored, as dockerd does
        elif key == "no-new-privileges" and value in _TRUE | _FALSE:
            out.no_new_privileges = value in _TRUE
        elif key != "label":
            raise InvalidParameter(f'invalid --security-opt 2: "{opt}"')
    if out.seccomp not in ("", "builtin", "unconfined"):
        seccomp.parse_profile(out.seccomp)
    return out


def _check_devices(devices: list[DeviceMapping]) -> None:
    """Docker's checks of --device mappings; fills in the defaults (same path inside, rwm)."""
    for d in devices:
        if not d.path_on_host:
            raise InvalidParameter("invalid Devices: each needs a PathOnHost")
        d.cgroup_permissions = d.cgroup_permissions or "rwm"
        if any(c not in "rwm" for c in d.cgroup_permissions):
            raise InvalidParameter(f"invalid device mode: {d.cgroup_permissions}")
        d.path_in_container = d.path_in_container or d.path_on_host
        if not d.path_in_container.startswith("/"):
            raise InvalidParameter(f"invalid device path: {d.path_in_container}")


def validate_host_config(h: HostConfig) -> None:
    """Check SecurityOpt and Devices of a create request, filling in dockerd's defaults in place."""
    parse_security_opts(h.security_opt or [])
    h.resources.devices = h.resources.devices or []
    _check_devices(h.resources.devices)
    if not h.privileged:  # as dockerd: recorded at create, so inspect shows them
        if h.masked_paths is None:
            h.masked_paths = list(MASKED_PATHS)
        if h.readonly_paths is None:
            h.readonly_paths = list(READONLY_PATHS)


# ---- devices ----------------------------------------------------------
def _device(path: str, inside: str, perms: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """OCI device and its cgroup rule for a host device node; None if `path` is not one."""
    st = os.lstat(path)
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        return None
    major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
    dev = {"path": inside, "type": kind, "major": major, "minor": minor,
           "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid}
    return dev, {"allow": True, "type": kind, "major": major, "minor": minor, "access": perms}


def _walk_devices(root: str, inside: str, perms: str, skip: set[str]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if os.path.relpath(os.path.join(dirpath, d), root) not in skip]
        for name in filenames:
            full = os.path.join(dirpath, name)
            try:
                entry = _device(full, inside + full[len(root):], perms)
            except OSError:
                continue
            if entry:
                found.append(entry)
    return found


def custom_devices(mappings: list[DeviceMapping]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Docker's DevicesFromPath for each --device: a node, or every node under a directory."""
    out = []
    for m in mappings:
        host = m.path_on_host
        resolved = os.path.realpath(host) if os.path.islink(host) else host
        try:
            entry = _device(resolved, m.path_in_container, m.cgroup_permissions)
            reason = "not a device node"
        except OSError as e:
            entry, reason = None, os.strerror(e.errno or 0).lower()
        if entry:
            out.append(entry)
            continue
        found = _walk_devices(resolved, m.path_in_container, m.cgroup_permissions, set()) \
            if os.path.isdir(resolved) else []
        if not found:
            raise InternalError(f'error gathering device information while adding custom device "{host}": {reason}')
        out += found
    return out


def host_devices() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Every device node under the host's /dev, for --privileged."""
    return [e for e in _walk_devices("/dev", "/dev", "rwm", _SKIP_DEV_DIRS) if e[0]["path"] != "/dev/console"]


# ---- groups -----------------------------------------------------------
def group_add_gids(rootfs: str, groups: list[str]) -> list[int]:
    """--group-add names or numbers against the image's /etc/group (runc's GetAdditionalGroups)."""
    if not groups:
        return []
    rows = [line.split(":") for line in read_in_root(rootfs, "/etc/group").splitlines()]
    by_name = {r[0]: int(r[2]) for r in rows if len(r) >= 3 and r[2].isdigit()}
    gids = []
    for g in groups:
        if g in by_name:
            gids.append(by_name[g])
        elif g.isdigit():
            gids.append(int(g))
        else:
            raise InternalError(f"Unable to find group {g}: no matching entries in group file")
    return gids


def spec_options(h: HostConfig) -> dict[str, Any]:
    """The SpecOptions fields this module owns, from a validated HostConfig."""
    opts = parse_security_opts(h.security_opt or [])
    privileged = h.privileged
    devices = host_devices() if privileged else []
    devices += custom_devices(h.resources.devices or [])
    if privileged or opts.seccomp == "unconfined":
        profile = None
    elif opts.seccomp in ("", "builtin"):
        profile = seccomp.default_profile()
    else:
        profile = seccomp.parse_profile(opts.seccomp)
    return {"no_new_privileges": opts.no_new_privileges, "seccomp_profile": profile,
            "masked_paths": h.masked_paths, "readonly_paths": h.readonly_paths,
            "devices": [d for d, _ in devices], "device_rules": [] if privileged else [r for _, r in devices]}
