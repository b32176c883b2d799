"""Resource limits: HostConfig's Docker fields -> OCI `linux.resources`, rlimits and sysctls.

Validation follows dockerd's verifyPlatformContainerResources (same
messages, all 400 at create and update) and its defaults (swap = 2x memory,
64MB /dev/shm, OomKillDisable false). What the host cannot enforce is
discarded with Docker's warning rather than failing the start in runc.
"""
from __future__ import annotations

import os
from typing import Any

from engine.errors import Conflict, InvalidParameter

MIN_MEMORY = 6 * 1024 * 1024
DEFAULT_SHM_SIZE = 64 * 1024 * 1024
CPU_PERIOD = 100_000
RLIMITS = {"as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
           "rss", "rtprio", "rttime", "sigpending", "stack"}
# sysctls the kernel scopes to a container's IPC or network namespace (Docker's list)
NAMESPACED_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                      "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}
INT_FIELDS = ("Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares", "CpuQuota", "CpuPeriod",
              "BlkioWeight", "ShmSize")
CGROUP_ROOT = "/sys/fs/cgroup"
# each limit pydock applies: its HostConfig field, the cgroup controller it needs, the docker run flag that sets it
LIMITS = (("Memory", "memory", "--memory"), ("MemorySwap", "memory", "--memory-swap"),
          ("MemoryReservation", "memory", "--memory-reservation"),
          ("MemorySwappiness", "memory", "--memory-swappiness"), ("OomKillDisable", "memory", "--oom-kill-disable"),
          ("NanoCpus", "cpu", "--cpus"), ("CpuShares", "cpu", "--cpu-shares"), ("CpuPeriod", "cpu", "--cpu-period"),
          ("CpuQuota", "cpu", "--cpu-quota"), ("CpusetCpus", "cpuset", "--cpuset-cpus"),
          ("CpusetMems", "cpuset", "--cpuset-mems"), ("PidsLimit", "pids", "--pids-limit"),
          ("BlkioWeight", "io", "--blkio-weight"))


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


def _check_cpuset(value: str, available: str, what: str, noun: str) -> None:
    if not value:
        return
    try:
        requested = parse_cpuset(value)
    except ValueError as e:
        raise InvalidParameter(f"Invalid value {value} for cpuset {what}: {e}") from None
    if not requested <= parse_cpuset(available):
        raise InvalidParameter(f"Requested {noun} are not available - requested {value}, available: {available}")


# ---- validation --------------------------------------------------------
def _ints(h: dict[str, Any]) -> None:
    """Go's zero for the integer fields a (type-checked, see validate.py) body left out or null."""
    for key in INT_FIELDS:
        if h.get(key) is None:
            h[key] = 0


def _limit_set(key: str, value: Any) -> bool:
    """Whether a (defaulted) field asks for a limit; 0, -1 and null are the CLI's "unset"/"unlimited"."""
    if key == "OomKillDisable":
        return value is True
    return value not in (None, 0, -1, "")


def refuse_unavailable(h: dict[str, Any], controllers: frozenset[str] | None, reason: str) -> None:
    """A 400 naming every requested limit whose cgroup controller the daemon cannot use, and why.

    `controllers` None means all of them (a root daemon); a rootless daemon has
    only those of a delegated cgroup v2 subtree, none on cgroup v1. Docker would
    drop such limits with a warning; a limit silently not applied is worse than
    a refusal.
    """
    if controllers is None:
        return
    wanted = [flag for key, controller, flag in LIMITS if _limit_set(key, h.get(key)) and controller not in controllers]
    if wanted:
        raise InvalidParameter(f"cannot set {', '.join(wanted)}: {reason}")


def verify(h: dict[str, Any], update: bool = False, controllers: frozenset[str] | None = None,
           reason: str = "") -> list[str]:
    """dockerd's resource checks on `h` (a HostConfig or update body), discarding what the host lacks.

    `controllers` and `reason`: see `refuse_unavailable`.
    """
    _ints(h)
    if h.get("MemorySwappiness") == -1:
        h["MemorySwappiness"] = None  # -1 is the CLI's "unset"
    refuse_unavailable(h, controllers, reason)
    warnings: list[str] = []
    mem, swap, reservation = h["Memory"], h["MemorySwap"], h["MemoryReservation"]
    if mem and mem < MIN_MEMORY:
        raise InvalidParameter("Minimum memory limit allowed is 6MB")
    if mem > 0 and swap != -1 and not swap_limit_supported():
        warnings.append("Your kernel does not support swap limit capabilities or the cgroup is not mounted. "
                        "Memory limited without swap.")
        h["MemorySwap"] = swap = -1
    if swap < -1:  # dockerd passes these to runc, which fails; refuse them up front
        raise InvalidParameter(f"invalid MemorySwap {swap}: use -1 for unlimited swap, or a limit in bytes")
    if mem > 0 and swap > 0 and swap < mem:
        raise InvalidParameter("Minimum memoryswap limit should be larger than memory limit, see usage")
    if not mem and swap > 0 and not update:
        raise InvalidParameter("You should always set the Memory limit when using Memoryswap limit, see usage")
    swappiness = h.get("MemorySwappiness")
    if swappiness is not None and swappiness != -1 and not 0 <= swappiness <= 100:
        raise InvalidParameter(f"Invalid value: {swappiness}, valid memory swappiness range is 0-100")
    if reservation and reservation < MIN_MEMORY:
        raise InvalidParameter("Minimum memory reservation allowed is 6MB")
    if mem > 0 and reservation > 0 and mem < reservation:
        raise InvalidParameter("Minimum memory limit can not be less than memory reservation limit, see usage")
    if h.get("OomKillDisable") and cgroup_version() == "2":
        warnings.append("Your kernel does not support OomKillDisable. OomKillDisable discarded.")
        h["OomKillDisable"] = False
    elif h.get("OomKillDisable") and not mem:
        warnings.append("OOM killer is disabled for the container, but no memory limit is set, this can result "
                        "in the system running out of resources.")
    _verify_cpu(h)
    _check_cpuset(h.get("CpusetCpus") or "", available_cpus(), "cpus", "CPUs")
    _check_cpuset(h.get("CpusetMems") or "", available_mems(), "mems", "memory nodes")
    weight = h["BlkioWeight"]
    if weight and not blkio_weight_supported():
        warnings.append("Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.")
        h["BlkioWeight"] = 0
    elif weight and not 10 <= weight <= 1000:
        raise InvalidParameter("Range of blkio weight is from 10 to 1000")
    if h["ShmSize"] < 0:
        raise InvalidParameter("SHM size can not be less than 0")
    return warnings


def _verify_cpu(h: dict[str, Any]) -> None:
    nano, period, quota = h["NanoCpus"], h["CpuPeriod"], h["CpuQuota"]
    if nano > 0 and period > 0:
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano > 0 and quota > 0:
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    ncpu = os.cpu_count() or 1
    if nano and not 0 < nano <= ncpu * 1_000_000_000:
        raise InvalidParameter(f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available")
    if h["CpuShares"] < 0:
        raise InvalidParameter("shares: invalid argument")
    if period and not 1000 <= period <= 1_000_000:
        raise InvalidParameter("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
    if 0 < quota < 1000:
        raise InvalidParameter("CPU cfs quota can not be less than 1ms (i.e. 1000)")


def _ulimits(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidParameter("invalid Ulimits: must be a list")
    out = []
    for u in value:
        if not isinstance(u, dict) or not isinstance(u.get("Name"), str) \
                or not all(isinstance(u.get(k), int) and not isinstance(u.get(k), bool) for k in ("Soft", "Hard")):
            raise InvalidParameter("invalid Ulimits: each needs a Name and integer Soft and Hard limits")
        if u["Name"] not in RLIMITS:
            raise InvalidParameter(f"invalid ulimit type: {u['Name']}")
        if u["Soft"] > u["Hard"] and u["Hard"] != -1:
            raise InvalidParameter(f"ulimit soft limit must be less than or equal to hard limit: {u['Soft']} > {u['Hard']}")
        out.append({"Name": u["Name"], "Hard": u["Hard"], "Soft": u["Soft"]})
    return out


def _sysctls(value: Any, network_mode: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidParameter("invalid Sysctls: must be a map of strings")
    for key in value:
        if key.startswith("net."):
            if network_mode == "host":
                raise InvalidParameter(f"sysctl {key!r} not allowed in host network namespace")
        elif key not in NAMESPACED_SYSCTLS and not key.startswith("fs.mqueue."):
            raise InvalidParameter(f"sysctl '{key}' is not allowed")
    return dict(value)


def adapt_host_config(h: dict[str, Any], controllers: frozenset[str] | None = None, reason: str = "") -> list[str]:
    """Validate a create request's limits and fill in Docker's defaults in place; returns the warnings.

    `controllers` and `reason`: see `refuse_unavailable`.
    """
    warnings = verify(h, controllers=controllers, reason=reason)
    if h["Memory"] > 0 and h["MemorySwap"] == 0:
        h["MemorySwap"] = h["Memory"] * 2
    h["ShmSize"] = h["ShmSize"] or DEFAULT_SHM_SIZE
    if h.get("OomKillDisable") is None:
        h["OomKillDisable"] = False
    if h.get("PidsLimit") is not None and h["PidsLimit"] <= 0:
        h["PidsLimit"] = None  # 0 and negatives mean unlimited
    if h.get("Ulimits"):
        h["Ulimits"] = _ulimits(h["Ulimits"])
    if h.get("Sysctls"):
        h["Sysctls"] = _sysctls(h["Sysctls"], h.get("NetworkMode", ""))
    return warnings


# ---- update -------------------------------------------------------------
RESTART_POLICIES = {"no", "always", "unless-stopped", "on-failure"}
UPDATABLE = ("BlkioWeight", "CpuShares", "NanoCpus", "CpuPeriod", "CpuQuota", "CpusetCpus", "CpusetMems",
             "MemorySwap", "MemoryReservation")


def check_restart_policy(name: str, retries: int) -> None:
    """dockerd's restart policy checks, shared by create and update."""
    if name not in RESTART_POLICIES:
        raise InvalidParameter(f"invalid restart policy '{name}'")
    if retries and name != "on-failure":
        raise InvalidParameter("invalid restart policy: maximum retry count can only be used with 'on-failure'")
    if retries < 0:
        raise InvalidParameter("invalid restart policy: maximum retry count cannot be negative")


def apply_update(h: dict[str, Any], body: dict[str, Any], controllers: frozenset[str] | None = None,
                 reason: str = "") -> list[str]:
    """Merge a `POST /containers/{id}/update` body into HostConfig `h` as dockerd's UpdateContainer does.

    `controllers` and `reason`: see `refuse_unavailable`.
    """
    upd = {k: body.get(k) for k in (*INT_FIELDS, "CpusetCpus", "CpusetMems", "PidsLimit", "MemorySwappiness")}
    upd["ShmSize"] = None  # not in Docker's UpdateConfig: ignored like any unknown field
    warnings = verify(upd, update=True, controllers=controllers, reason=reason)
    cur = {k: h.get(k) or 0 for k in INT_FIELDS}
    for new, old, msg in (("NanoCpus", "CpuPeriod", "Nano CPUs cannot be updated as CPU Period has already been set"),
                          ("NanoCpus", "CpuQuota", "Nano CPUs cannot be updated as CPU Quota has already been set"),
                          ("CpuPeriod", "NanoCpus", "CPU Period cannot be updated as NanoCPUs has already been set"),
                          ("CpuQuota", "NanoCpus", "CPU Quota cannot be updated as NanoCPUs has already been set")):
        if (upd[new] or 0) > 0 and cur[old] > 0:
            raise Conflict(f"Conflicting options: {msg}")
    if upd["Memory"]:
        if upd["Memory"] > cur["MemorySwap"] and not upd["MemorySwap"]:
            raise Conflict("Memory limit should be smaller than already set memoryswap limit, "
                           "update the memoryswap at the same time")
        h["Memory"] = upd["Memory"]
    for key in UPDATABLE:
        if upd[key]:
            h[key] = upd[key]
    if upd["PidsLimit"] is not None:
        h["PidsLimit"] = upd["PidsLimit"]
    policy = body.get("RestartPolicy") or {}
    if policy.get("Name"):
        retries = policy.get("MaximumRetryCount") or 0
        check_restart_policy(policy["Name"], retries)
        if h.get("AutoRemove") and policy["Name"] != "no":
            raise Conflict("Restart policy cannot be updated because AutoRemove is enabled for the container")
        h["RestartPolicy"] = {"Name": policy["Name"], "MaximumRetryCount": retries}
    return warnings


# ---- OCI ------------------------------------------------------------------
def linux_resources(h: dict[str, Any]) -> dict[str, Any]:
    """OCI `linux.resources` (without devices) for a validated HostConfig; also `runc update`'s input."""
    out: dict[str, Any] = {}
    memory = _memory(h)
    if memory:
        out["memory"] = memory
    cpu = _cpu(h)
    if cpu:
        out["cpu"] = cpu
    pids = h.get("PidsLimit")
    if pids is not None:
        out["pids"] = {"limit": pids if pids > 0 else -1}  # 0 and negatives mean unlimited, as in Docker
    if h.get("BlkioWeight"):
        out["blockIO"] = {"weight": h["BlkioWeight"]}
    return out


def _memory(h: dict[str, Any]) -> dict[str, Any]:
    memory: dict[str, Any] = {}
    if h.get("Memory"):
        memory["limit"] = h["Memory"]
    if h.get("MemoryReservation"):
        memory["reservation"] = h["MemoryReservation"]
    if h.get("MemorySwap"):
        memory["swap"] = h["MemorySwap"]
    swappiness = h.get("MemorySwappiness")
    if swappiness is not None and swappiness != -1:
        memory["swappiness"] = swappiness
    if h.get("OomKillDisable") is not None and cgroup_version() == "1":
        memory["disableOOMKiller"] = bool(h["OomKillDisable"])
    return memory


def _cpu(h: dict[str, Any]) -> dict[str, Any]:
    cpu: dict[str, Any] = {}
    if h.get("CpuShares"):
        cpu["shares"] = h["CpuShares"]
    if h.get("NanoCpus"):
        cpu["period"] = CPU_PERIOD
        cpu["quota"] = h["NanoCpus"] * CPU_PERIOD // 1_000_000_000
    if h.get("CpuPeriod"):
        cpu["period"] = h["CpuPeriod"]
    if h.get("CpuQuota"):
        cpu["quota"] = h["CpuQuota"]
    if h.get("CpusetCpus"):
        cpu["cpus"] = h["CpusetCpus"]
    if h.get("CpusetMems"):
        cpu["mems"] = h["CpusetMems"]
    return cpu


def rlimits(h: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"type": "RLIMIT_" + u["Name"].upper(), "hard": u["Hard"], "soft": u["Soft"]}
            for u in h.get("Ulimits") or []]


def spec_options(h: dict[str, Any]) -> dict[str, Any]:
    """The SpecOptions fields this module owns."""
    return {"resources": linux_resources(h), "rlimits": rlimits(h), "sysctls": dict(h.get("Sysctls") or {}),
            "shm_size": h.get("ShmSize") or DEFAULT_SHM_SIZE}
