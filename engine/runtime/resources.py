"""Resource limits: HostConfig's Docker fields -> OCI `linux.resources`, rlimits and sysctls.

Validation follows dockerd's verifyPlatformContainerResources (same
messages, all 400 at create and update) and its defaults (swap = 2x memory,
64MB /dev/shm, OomKillDisable false). What the host cannot enforce is
discarded with Docker's warning rather than failing the start in runc.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from engine.errors import Conflict, InvalidParameter
from engine.types.container import HostConfig, Resources, RestartPolicy, Ulimit, UpdateConfig

MIN_MEMORY = 6 * 1024 * 1024
DEFAULT_SHM_SIZE = 64 * 1024 * 1024
CPU_PERIOD = 100_000
RLIMITS = {"as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
           "rss", "rtprio", "rttime", "sigpending", "stack"}
# sysctls the kernel scopes to a container's IPC or network namespace (Docker's list)
NAMESPACED_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                      "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}
CGROUP_ROOT = "/sys/fs/cgroup"
# each limit pydock applies: its Resources attribute, the cgroup controller it needs, the docker run flag that sets it
LIMITS = (("memory", "memory", "--memory"), ("memory_swap", "memory", "--memory-swap"),
          ("memory_reservation", "memory", "--memory-reservation"),
          ("memory_swappiness", "memory", "--memory-swappiness"), ("oom_kill_disable", "memory", "--oom-kill-disable"),
          ("nano_cpus", "cpu", "--cpus"), ("cpu_shares", "cpu", "--cpu-shares"), ("cpu_period", "cpu", "--cpu-period"),
          ("cpu_quota", "cpu", "--cpu-quota"), ("cpuset_cpus", "cpuset", "--cpuset-cpus"),
          ("cpuset_mems", "cpuset", "--cpuset-mems"), ("pids_limit", "pids", "--pids-limit"),
          ("blkio_weight", "io", "--blkio-weight"))


# ---- what the host can enforce --------------------------------------------
def cgroup_version() -> str:
    return "2" if os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers")) else "1"


def _v1(controller: str, name: str) -> str:
    return os.path.join(CGROUP_ROOT, controller, name)


def swap_limit_supported() -> bool:
    """Swap accounting: v1's memsw files, or v2's memory.swap.max in the daemon's own cgroup."""
    if cgroup_version() == "2":
        own = _read("/proc/self/cgroup").rpartition("::")[2]
        return os.path.exists(os.path.join(CGROUP_ROOT, own.lstrip("/"), "memory.swap.max"))
    return os.path.exists(_v1("memory", "memory.memsw.limit_in_bytes"))


def blkio_weight_supported() -> bool:
    if cgroup_version() == "2":
        return "io" in _read(os.path.join(CGROUP_ROOT, "cgroup.controllers")).split()
    return any(os.path.exists(_v1("blkio", f)) for f in ("blkio.weight", "blkio.bfq.weight"))


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def available_cpus() -> str:
    """The host's cpuset, as Docker prints it in "available: 0-1"."""
    path = os.path.join(CGROUP_ROOT, "cpuset.cpus.effective") if cgroup_version() == "2" else _v1("cpuset", "cpuset.cpus")
    return _read(path) or _read("/sys/devices/system/cpu/online")


def available_mems() -> str:
    path = os.path.join(CGROUP_ROOT, "cpuset.mems.effective") if cgroup_version() == "2" else _v1("cpuset", "cpuset.mems")
    return _read(path) or _read("/sys/devices/system/node/online") or "0"


def parse_cpuset(text: str) -> set[int]:
    """Docker's ParseUintList: "0-2,4"; raises ValueError("invalid format: ...")."""
    out: set[int] = set()
    for part in text.split(","):
        lo, sep, hi = part.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ValueError(f"invalid format: {text}")
        first, last = int(lo), int(hi) if sep else int(lo)
        if last < first:
            raise ValueError(f"invalid range format: {part}")
        out.update(range(first, last + 1))
    return out


def _check_cpuset(value: str, available_of: Callable[[], str], what: str, noun: str) -> None:
    """`value` names only what the host has; `available_of` reads that from the host (cgroup files), only
    when a value is given: every create checks."""
    if not value:
        return
    try:
        requested = parse_cpuset(value)
    except ValueError as e:
        raise InvalidParameter(f"Invalid value {value} for cpuset {what}: {e}") from None
    available = available_of()
    if not requested <= parse_cpuset(available):
        raise InvalidParameter(f"Requested {noun} are not available - requested {value}, available: {available}")


# ---- validation --------------------------------------------------------
def _limit_set(attr: str, value: Any) -> bool:
    """Whether a field asks for a limit; 0, -1 and None are the CLI's "unset"/"unlimited"."""
    if attr == "oom_kill_disable":
        return value is True
    return value not in (None, 0, -1, "")


def refuse_unavailable(r: Resources, controllers: frozenset[str] | None, reason: str) -> None:
    """A 400 naming every requested limit whose cgroup controller the daemon cannot use, and why.

    `controllers` None means all of them (a root daemon); a rootless daemon has
    only those of a delegated cgroup v2 subtree, none on cgroup v1. Docker would
    drop such limits with a warning; a limit silently not applied is worse than
    a refusal.
    """
    if controllers is None:
        return
    wanted = [flag for attr, controller, flag in LIMITS
              if _limit_set(attr, getattr(r, attr)) and controller not in controllers]
    if wanted:
        raise InvalidParameter(f"cannot set {', '.join(wanted)}: {reason}")


def verify(r: Resources, update: bool = False, controllers: frozenset[str] | None = None,
           reason: str = "") -> list[str]:
    """dockerd's resource checks on `r` (a HostConfig's or an update's), discarding what the host lacks.

    `controllers` and `reason`: see `refuse_unavailable`.
    """
    if r.memory_swappiness == -1:
        r.memory_swappiness = None  # -1 is the CLI's "unset"
    refuse_unavailable(r, controllers, reason)
    warnings: list[str] = []
    mem, swap, reservation = r.memory, r.memory_swap, r.memory_reservation
    if mem and mem < MIN_MEMORY:
        raise InvalidParameter("Minimum memory limit allowed is 6MB")
    if mem > 0 and swap != -1 and not swap_limit_supported():
        warnings.append("Your kernel does not support swap limit capabilities or the cgroup is not mounted. "
                        "Memory limited without swap.")
        r.memory_swap = swap = -1
    if swap < -1:  # dockerd passes these to runc, which fails; refuse them up front
        raise InvalidParameter(f"invalid MemorySwap {swap}: use -1 for unlimited swap, or a limit in bytes")
    if mem > 0 and swap > 0 and swap < mem:
        raise InvalidParameter("Minimum memoryswap limit should be larger than memory limit, see usage")
    if not mem and swap > 0 and not update:
        raise InvalidParameter("You should always set the Memory limit when using Memoryswap limit, see usage")
    swappiness = r.memory_swappiness
    if swappiness is not None and not 0 <= swappiness <= 100:
        raise InvalidParameter(f"Invalid value: {swappiness}, valid memory swappiness range is 0-100")
    if reservation and reservation < MIN_MEMORY:
        raise InvalidParameter("Minimum memory reservation allowed is 6MB")
    if mem > 0 and reservation > 0 and mem < reservation:
        raise InvalidParameter("Minimum memory limit can not be less than memory reservation limit, see usage")
    if r.oom_kill_disable and cgroup_version() == "2":
        warnings.append("Your kernel does not support OomKillDisable. OomKillDisable discarded.")
        r.oom_kill_disable = False
    elif r.oom_kill_disable and not mem:
        warnings.append("OOM killer is disabled for the container, but no memory limit is set, this can result "
                        "in the system running out of resources.")
    _verify_cpu(r)
    _check_cpuset(r.cpuset_cpus, available_cpus, "cpus", "CPUs")
    _check_cpuset(r.cpuset_mems, available_mems, "mems", "memory nodes")
    weight = r.blkio_weight
    if weight and not blkio_weight_supported():
        warnings.append("Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.")
        r.blkio_weight = 0
    elif weight and not 10 <= weight <= 1000:
        raise InvalidParameter("Range of blkio weight is from 10 to 1000")
    return warnings


def _verify_cpu(r: Resources) -> None:
    nano, period, quota = r.nano_cpus, r.cpu_period, r.cpu_quota
    if nano > 0 and period > 0:
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano > 0 and quota > 0:
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    ncpu = os.cpu_count() or 1
    if nano and not 0 < nano <= ncpu * 1_000_000_000:
        raise InvalidParameter(f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available")
    if r.cpu_shares < 0:
        raise InvalidParameter("shares: invalid argument")
    if period and not 1000 <= period <= 1_000_000:
        raise InvalidParameter("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
    if 0 < quota < 1000:
        raise InvalidParameter("CPU cfs quota can not be less than 1ms (i.e. 1000)")


def _check_ulimits(ulimits: list[Ulimit]) -> None:
    for u in ulimits:
        if u.name not in RLIMITS:
            raise InvalidParameter(f"invalid ulimit type: {u.name}")
        if u.soft > u.hard and u.hard != -1:
            raise InvalidParameter(f"ulimit soft limit must be less than or equal to hard limit: {u.soft} > {u.hard}")


def _check_sysctls(sysctls: dict[str, str], network_mode: str) -> None:
    for key in sysctls:
        if key.startswith("net."):
            if network_mode == "host":
                raise InvalidParameter(f"sysctl {key!r} not allowed in host network namespace")
        elif key not in NAMESPACED_SYSCTLS and not key.startswith("fs.mqueue."):
            raise InvalidParameter(f"sysctl '{key}' is not allowed")


def adapt_host_config(h: HostConfig, controllers: frozenset[str] | None = None, reason: str = "") -> list[str]:
    """Validate a create request's limits and fill in Docker's defaults in place; returns the warnings.

    `controllers` and `reason`: see `refuse_unavailable`.
    """
    r = h.resources
    warnings = verify(r, controllers=controllers, reason=reason)
    if h.shm_size < 0:
        raise InvalidParameter("SHM size can not be less than 0")
    if r.memory > 0 and r.memory_swap == 0:
        r.memory_swap = r.memory * 2
    h.shm_size = h.shm_size or DEFAULT_SHM_SIZE
    if r.oom_kill_disable is None:
        r.oom_kill_disable = False
    if r.pids_limit is not None and r.pids_limit <= 0:
        r.pids_limit = None  # 0 and negatives mean unlimited
    _check_ulimits(r.ulimits or [])
    _check_sysctls(h.sysctls or {}, h.network_mode)
    return warnings


# ---- update -------------------------------------------------------------
RESTART_POLICIES = {"no", "always", "unless-stopped", "on-failure"}
# Resources attributes an update sets when given (non-zero)
UPDATABLE = ("blkio_weight", "cpu_shares", "nano_cpus", "cpu_period", "cpu_quota", "cpuset_cpus", "cpuset_mems",
             "memory_swap", "memory_reservation")


def check_restart_policy(name: str, retries: int) -> None:
    """dockerd's restart policy checks, shared by create and update."""
    if name not in RESTART_POLICIES:
        raise InvalidParameter(f"invalid restart policy '{name}'")
    if retries and name != "on-failure":
        raise InvalidParameter("invalid restart policy: maximum retry count can only be used with 'on-failure'")
    if retries < 0:
        raise InvalidParameter("invalid restart policy: maximum retry count cannot be negative")


def apply_update(h: HostConfig, upd: UpdateConfig, controllers: frozenset[str] | None = None,
                 reason: str = "") -> list[str]:
    """Merge a `POST /containers/{id}/update` body into HostConfig `h` as dockerd's UpdateContainer does.

    `controllers` and `reason`: see `refuse_unavailable`.
    """
    new, cur = upd.resources, h.resources
    warnings = verify(new, update=True, controllers=controllers, reason=reason)
    for changed, set_already, msg in (
            (new.nano_cpus, cur.cpu_period, "Nano CPUs cannot be updated as CPU Period has already been set"),
            (new.nano_cpus, cur.cpu_quota, "Nano CPUs cannot be updated as CPU Quota has already been set"),
            (new.cpu_period, cur.nano_cpus, "CPU Period cannot be updated as NanoCPUs has already been set"),
            (new.cpu_quota, cur.nano_cpus, "CPU Quota cannot be updated as NanoCPUs has already been set")):
        if changed > 0 and set_already > 0:
            raise Conflict(f"Conflicting options: {msg}")
    if new.memory:
        if new.memory > cur.memory_swap and not new.memory_swap:
            raise Conflict("Memory limit should be smaller than already set memoryswap limit, "
                           "update the memoryswap at the same time")
        cur.memory = new.memory
    for attr in UPDATABLE:
        value = getattr(new, attr)
        if value:
            setattr(cur, attr, value)
    if new.pids_limit is not None:
        cur.pids_limit = new.pids_limit
    policy = upd.restart_policy
    if policy.name:
        check_restart_policy(policy.name, policy.maximum_retry_count)
        if h.auto_remove and policy.name != "no":
            raise Conflict("Restart policy cannot be updated because AutoRemove is enabled for the container")
        h.restart_policy = RestartPolicy(policy.name, policy.maximum_retry_count)
    return warnings


# ---- OCI ------------------------------------------------------------------
def linux_resources(r: Resources) -> dict[str, Any]:
    """OCI `linux.resources` (without devices) for validated limits; also `runc update`'s input."""
    out: dict[str, Any] = {}
    memory = _memory(r)
    if memory:
        out["memory"] = memory
    cpu = _cpu(r)
    if cpu:
        out["cpu"] = cpu
    if r.pids_limit is not None:
        out["pids"] = {"limit": r.pids_limit if r.pids_limit > 0 else -1}  # 0 and negatives: unlimited, as Docker
    if r.blkio_weight:
        out["blockIO"] = {"weight": r.blkio_weight}
    return out


def _memory(r: Resources) -> dict[str, Any]:
    memory: dict[str, Any] = {}
    if r.memory:
        memory["limit"] = r.memory
    if r.memory_reservation:
        memory["reservation"] = r.memory_reservation
    if r.memory_swap:
        memory["swap"] = r.memory_swap
    if r.memory_swappiness is not None and r.memory_swappiness != -1:
        memory["swappiness"] = r.memory_swappiness
    if r.oom_kill_disable is not None and cgroup_version() == "1":
        memory["disableOOMKiller"] = r.oom_kill_disable
    return memory


def _cpu(r: Resources) -> dict[str, Any]:
    cpu: dict[str, Any] = {}
    if r.cpu_shares:
        cpu["shares"] = r.cpu_shares
    if r.nano_cpus:
        cpu["period"] = CPU_PERIOD
        cpu["quota"] = r.nano_cpus * CPU_PERIOD // 1_000_000_000
    if r.cpu_period:
        cpu["period"] = r.cpu_period
    if r.cpu_quota:
        cpu["quota"] = r.cpu_quota
    if r.cpuset_cpus:
        cpu["cpus"] = r.cpuset_cpus
    if r.cpuset_mems:
        cpu["mems"] = r.cpuset_mems
    return cpu


def rlimits(r: Resources) -> list[dict[str, Any]]:
    return [{"type": "RLIMIT_" + u.name.upper(), "hard": u.hard, "soft": u.soft} for u in r.ulimits or []]


def spec_options(h: HostConfig) -> dict[str, Any]:
    """The SpecOptions fields this module owns."""
    return {"resources": linux_resources(h.resources), "rlimits": rlimits(h.resources),
            "sysctls": dict(h.sysctls or {}), "shm_size": h.shm_size or DEFAULT_SHM_SIZE}
