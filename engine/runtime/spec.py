"""OCI runtime spec generation with Docker's defaults.

Pure functions of their inputs (save the daemon's own capability bounding
set, read once), so the security-relevant defaults (capabilities, masked
paths, mounts) are unit-tested without running runc.
"""
from __future__ import annotations

import functools
import glob
from dataclasses import dataclass, field
from typing import Any

from engine.errors import InvalidParameter
from engine.runtime import seccomp
from pydock_common.userns import single_id_namespace

DEFAULT_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]
# every capability by its bit number, the order Docker lists them for "ALL"
ALL_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]
MASKED_PATHS = [
    "/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/sched_debug", "/proc/scsi", "/proc/timer_list", "/proc/timer_stats",
    "/sys/devices/virtual/powercap", "/sys/firmware",
    # per-CPU throttling counters leak host activity (Docker masks them since 28.x)
    *sorted((p for p in glob.glob("/sys/devices/system/cpu/cpu[0-9]*/thermal_throttle")),
            key=lambda p: int(p.split("/")[5][3:])),
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INIT_PATH = "/sbin/docker-init"


def normalize_caps(names: list[str]) -> list[str]:
    out = []
    for n in names:
        up = n.upper()
        if up == "ALL":
            out.append("ALL")
            continue
        cap = up if up.startswith("CAP_") else "CAP_" + up
        if cap not in ALL_CAPS:
            raise InvalidParameter(f'unknown capability: "{cap}"')
        out.append(cap)
    return out


def bounded_caps(mask: int) -> list[str]:
    """The capabilities in a bounding-set bit mask (/proc/self/status CapBnd)."""
    return [c for bit, c in enumerate(ALL_CAPS) if mask >> bit & 1]


@functools.cache
def host_caps() -> tuple[str, ...]:
    """What the daemon itself may grant: "ALL" and --privileged mean these, as in Docker.

    Asking runc for a capability outside the daemon's bounding set fails the
    start (e.g. inside another container that lacks CAP_SYS_RESOURCE).
    """
    try:
        with open("/proc/self/status") as f:
            line = next(line for line in f if line.startswith("CapBnd:"))
        return tuple(bounded_caps(int(line.split()[1], 16)))
    except (OSError, StopIteration, ValueError):
        return tuple(ALL_CAPS)


def effective_caps(cap_add: list[str], cap_drop: list[str], privileged: bool,
                   available: list[str] | tuple[str, ...] | None = None) -> list[str]:
    """Docker's TweakCapabilities: `available` (default: the host's) for privileged or
    --cap-add ALL, minus drops; --cap-drop ALL keeps only the adds; else defaults - drops + adds."""
    every = list(host_caps() if available is None else available)
    if privileged:
        return every
    add, drop = normalize_caps(cap_add), normalize_caps(cap_drop)
    if "ALL" in add:
        return [c for c in every if c not in drop]
    caps = [] if "ALL" in drop else [c for c in DEFAULT_CAPS if c not in drop]
    caps += [c for c in add if c not in caps]
    return caps


@dataclass
class SpecOptions:
    container_id: str
    rootfs: str
    args: list[str]
    env: list[str] = field(default_factory=list)
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    additional_gids: list[int] = field(default_factory=list)
    hostname: str = ""
    tty: bool = False
    console_size: tuple[int, int] | None = None
    readonly_rootfs: bool = False
    extra_mounts: list[dict[str, Any]] = field(default_factory=list)
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    network: str = ""  # "" = new namespace, "host", or a netns path
    init_path: str | None = None
    cgroups_path: str = ""
    no_new_privileges: bool = False
    resources: dict[str, Any] = field(default_factory=dict)
    sysctls: dict[str, str] = field(default_factory=dict)
    rlimits: list[dict[str, Any]] = field(default_factory=list)
    shm_size: int = 64 * 1024 * 1024
    # a Docker-format profile (conditions resolved against the caps here); None = unconfined
    seccomp_profile: dict[str, Any] | None = field(default_factory=seccomp.default_profile)
    devices: list[dict[str, Any]] = field(default_factory=list)  # OCI linux.devices
    device_rules: list[dict[str, Any]] = field(default_factory=list)  # devices cgroup allow rules for them
    masked_paths: list[str] | None = None  # None: Docker's defaults (none when privileged)
    readonly_paths: list[str] | None = None
    # rootless mode: runc runs as root of the daemon's user namespace; "" cgroups_path then means no cgroup
    rootless: bool = False


def default_mounts(host_network: bool, privileged: bool, shm_size: int = 64 * 1024 * 1024) -> list[dict[str, Any]]:
    """Docker's default mounts; privileged containers get /sys and cgroups writable."""
    ro = ["rw" if privileged else "ro"]
    sys_mount: dict[str, Any] = {"destination": "/sys", "type": "sysfs", "source": "sysfs",
                                 "options": ["nosuid", "noexec", "nodev", *ro]}
    if host_network:
        # sysfs cannot be mounted without an own network namespace; Docker binds it.
        sys_mount = {"destination": "/sys", "type": "bind", "source": "/sys",
                     "options": ["rbind", "nosuid", "noexec", "nodev", *ro]}
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        sys_mount,
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", *ro]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size}"]},
    ]


def build_spec(o: SpecOptions) -> dict[str, Any]:
    caps = effective_caps(o.cap_add, o.cap_drop, o.privileged)
    args = list(o.args)
    mounts = default_mounts(o.network == "host", o.privileged, o.shm_size)
    if o.init_path:
        args = [INIT_PATH, "--"] + args
        mounts.append({"destination": INIT_PATH, "type": "bind", "source": o.init_path,
                       "options": ["bind", "ro"]})
    mounts += o.extra_mounts
    namespaces: list[dict[str, str]] = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    if o.network != "host":
        namespaces.append({"type": "network", **({"path": o.network} if o.network else {})})
    process: dict[str, Any] = {
        "terminal": o.tty,
        "user": {"uid": o.uid, "gid": o.gid, **({"additionalGids": o.additional_gids} if o.additional_gids else {})},
        "args": args,
        "env": o.env,
        "cwd": o.cwd or "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": o.no_new_privileges,
        "oomScoreAdj": 0,
    }
    if o.rlimits:
        process["rlimits"] = o.rlimits
    if o.tty and o.console_size:
        process["consoleSize"] = {"height": o.console_size[0], "width": o.console_size[1]}
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "resources": {"devices": [{"allow": o.privileged, "access": "rwm"}, *o.device_rules], **o.resources},
        "devices": o.devices,
        "cgroupsPath": o.cgroups_path,
        "sysctl": dict(o.sysctls),
    }
    if not o.privileged:
        filters = seccomp.to_oci(o.seccomp_profile, caps) if o.seccomp_profile is not None else None
        if filters:
            linux["seccomp"] = filters
        linux["maskedPaths"] = MASKED_PATHS if o.masked_paths is None else o.masked_paths
        linux["readonlyPaths"] = READONLY_PATHS if o.readonly_paths is None else o.readonly_paths
    if o.rootless:
        _to_rootless(process, linux, mounts)
    return {
        "ociVersion": "1.0.2-dev",
        "process": process,
        "root": {"path": o.rootfs, "readonly": o.readonly_rootfs},
        "hostname": o.hostname if o.network != "host" else "",
        "mounts": mounts,
        "linux": linux,
    }


def _to_rootless(process: dict[str, Any], linux: dict[str, Any], mounts: list[dict[str, Any]]) -> None:
    """What a runc that is root only in a user namespace can do (moby's specconv.ToRootless).

    Without a cgroup of its own the container gets no resources at all (the
    limits were refused at create; device rules need the devices cgroup,
    which a user never has: runc bind-mounts the allowed devices instead). In
    a delegated cgroup v2 subtree, device rules are an eBPF program a user
    cannot load. An OOM score below the daemon's own would need privilege. A
    namespace that maps the user alone has no tty group for devpts.
    """
    if not linux["cgroupsPath"]:
        linux.pop("resources")
    else:
        linux["resources"].pop("devices", None)
    process["oomScoreAdj"] = max(process["oomScoreAdj"], _own_oom_score_adj())
    if single_id_namespace():  # devpts cannot give its nodes the tty group (5): no such group exists here
        for m in mounts:
            if m["type"] == "devpts":
                m["options"] = [o for o in m["options"] if o != "gid=5"]


def _own_oom_score_adj() -> int:
    try:
        with open("/proc/self/oom_score_adj") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 0


def merge_env(defaults: list[str] | None, overrides: list[str] | None) -> list[str]:
    """Docker's ReplaceOrAppendEnvValues: `K=v` replaces K in place or appends; a bare `K` unsets K."""
    out = list(defaults or [])
    for item in overrides or []:
        key, sep, _ = item.partition("=")
        keep = [e for e in out if e.partition("=")[0] != key]
        if not sep:
            out = keep
        elif len(keep) == len(out):
            out.append(item)
        else:
            out = [item if e.partition("=")[0] == key else e for e in out]
    return out


def container_env(image_env: list[str] | None, env: list[str] | None, hostname: str, tty: bool) -> list[str]:
    """The process environment: PATH, HOSTNAME and TERM defaults, overridden by image then run env."""
    defaults = [f"PATH={DEFAULT_PATH}", *([f"HOSTNAME={hostname}"] if hostname else []),
                *(["TERM=xterm"] if tty else [])]
    return merge_env(defaults, merge_env(image_env, env))
