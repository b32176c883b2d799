"""Per-container resource views: cgroup accounting (`docker stats`) and process lists (`docker top`).

Numbers come straight from the kernel, in Docker's units (bytes, nanoseconds):
the container's cgroup, found through /proc/<pid>/cgroup of its init process
so it is wherever runc really put it, in either the v1 per-controller
hierarchies or the v2 unified one (detected at runtime); /proc/stat for the
host CPU time that the CLI's CPU % is relative to; and /proc/<pid>/net/dev,
which shows the container's own network namespace.
"""
from __future__ import annotations

import functools
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

from engine.container.record import ContainerRecord
from engine.container.service import ContainerService
from engine.container.state import Op, check
from engine.errors import EngineError, InternalError, InvalidParameter, NotFound
from engine.runtime.base import ContainerRuntime
from engine.timeutil import ZERO_TIME, rfc3339_ns

NS_PER_SEC = 1_000_000_000
CLK_TCK = os.sysconf("SC_CLK_TCK")
CGROUP_ROOT = "/sys/fs/cgroup"
MAX_UINT64 = 2 ** 64 - 1
INTERVAL = 1.0  # Docker's stats collector samples once a second

Json = dict[str, Any]


def cgroup_version() -> str:
    return "2" if os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers")) else "1"


def host_memory() -> int:
    """MemTotal in bytes: Docker's memory limit for containers without one."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


# ---- file readers (a missing file reads as "no data": not every kernel has every knob)
def _text(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError):
        return ""


def _int(path: str, default: int = 0) -> int:
    """An integer file; `max` (v2 "unlimited") reads as `default`."""
    value = _text(path).strip()
    return int(value) if value.lstrip("-").isdigit() else default


def _kv(path: str) -> dict[str, int]:
    out = {}
    for line in _text(path).splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def _omit_empty(d: Json) -> Json:
    """Go's `omitempty`: Docker leaves zero counters and empty maps out of the JSON."""
    return {k: v for k, v in d.items() if v}


# ---- cgroup v1: one hierarchy per controller ---------------------------
@functools.lru_cache(maxsize=1)
def _v1_mounts() -> dict[str, tuple[str, str]]:
    """Controller -> (mount point, root of the hierarchy that is mounted there)."""
    out: dict[str, tuple[str, str]] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype, _source, options = (right.split() + ["", "", ""])[:3]
            if fstype != "cgroup":
                continue
            fields = left.split()
            for opt in options.split(","):
                out.setdefault(opt, (fields[4], fields[3]))
    return out


def _proc_cgroups(pid: int) -> dict[str, str]:
    """Controller -> cgroup path of `pid`; the v2 hierarchy is keyed ""."""
    out: dict[str, str] = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(","):
                out[controller] = path
    return out


class CgroupV1:
    def __init__(self, pid: int) -> None:
        mounts, paths = _v1_mounts(), _proc_cgroups(pid)
        self.dirs: dict[str, str] = {}
        for controller in ("cpu", "cpuacct", "memory", "pids", "blkio"):
            if controller in mounts and controller in paths:
                mountpoint, root = mounts[controller]
                rel = paths[controller]
                rel = rel[len(root):] if root != "/" and rel.startswith(root) else rel
                self.dirs[controller] = mountpoint + rel
        if "memory" not in self.dirs or not os.path.isdir(self.dirs["memory"]):
            raise FileNotFoundError(f"no memory cgroup for pid {pid}")

    def _f(self, controller: str, name: str) -> str:
        return os.path.join(self.dirs.get(controller, "/nonexistent"), name)

    def cpu(self) -> Json:
        stat = _kv(self._f("cpuacct", "cpuacct.stat"))
        throttle = _kv(self._f("cpu", "cpu.stat"))
        percpu = [int(v) for v in _text(self._f("cpuacct", "cpuacct.usage_percpu")).split()]
        return {
            "cpu_usage": {"total_usage": _int(self._f("cpuacct", "cpuacct.usage")),
                          **_omit_empty({"percpu_usage": percpu}),
                          "usage_in_kernelmode": stat.get("system", 0) * NS_PER_SEC // CLK_TCK,
                          "usage_in_usermode": stat.get("user", 0) * NS_PER_SEC // CLK_TCK},
            "throttling": _throttling(throttle, "throttled_time", 1),
        }

    def memory(self) -> Json:
        return _omit_empty({
            "usage": _int(self._f("memory", "memory.usage_in_bytes")),
            "max_usage": _int(self._f("memory", "memory.max_usage_in_bytes")),
            "stats": _kv(self._f("memory", "memory.stat")),
            "failcnt": _int(self._f("memory", "memory.failcnt")),
            "limit": _int(self._f("memory", "memory.limit_in_bytes")),
        })

    def pids(self) -> Json:
        return _omit_empty({"current": _int(self._f("pids", "pids.current")),
                            "limit": _int(self._f("pids", "pids.max"))})

    def blkio(self) -> Json:
        # runc's order: BFQ, then CFQ, then the throttle counters every kernel has.
        for prefix in ("blkio.bfq.", "blkio.", "blkio.throttle."):
            service_bytes = _blkio_entries(_text(self._f("blkio", prefix + "io_service_bytes_recursive")))
            if service_bytes:
                serviced = _blkio_entries(_text(self._f("blkio", prefix + "io_serviced_recursive")))
                break
        else:
            service_bytes, serviced = [], []
        # v1 reports every list, empty when the kernel does not count it
        return {**{k: [] for k in _BLKIO_KEYS},
                "io_service_bytes_recursive": service_bytes, "io_serviced_recursive": serviced}


def _throttling(stat: dict[str, int], time_key: str, to_ns: int) -> Json:
    """cpu.stat's CFS counters (same names in v1 and v2 except the time's unit)."""
    return {"periods": stat.get("nr_periods", 0), "throttled_periods": stat.get("nr_throttled", 0),
            "throttled_time": stat.get(time_key, 0) * to_ns}


def _blkio_entries(text: str) -> list[Json]:
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and ":" in parts[0]:
            major, _, minor = parts[0].partition(":")
            out.append({"major": int(major), "minor": int(minor), "op": parts[1], "value": int(parts[2])})
    return out


# ---- cgroup v2: one unified hierarchy ----------------------------------
class CgroupV2:
    def __init__(self, pid: int) -> None:
        self.dir = CGROUP_ROOT + _proc_cgroups(pid)[""]
        if not os.path.isdir(self.dir):
            raise FileNotFoundError(self.dir)

    def _f(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def cpu(self) -> Json:
        stat = _kv(self._f("cpu.stat"))
        return {
            "cpu_usage": {"total_usage": stat.get("usage_usec", 0) * 1000,
                          "usage_in_kernelmode": stat.get("system_usec", 0) * 1000,
                          "usage_in_usermode": stat.get("user_usec", 0) * 1000},
            "throttling": _throttling(stat, "throttled_usec", 1000),
        }

    def memory(self) -> Json:
        return _omit_empty({
            "usage": _int(self._f("memory.current")),
            "stats": _kv(self._f("memory.stat")),
            "failcnt": _kv(self._f("memory.events")).get("oom", 0),
            "limit": _int(self._f("memory.max"), MAX_UINT64),
        })

    def pids(self) -> Json:
        return _omit_empty({"current": _int(self._f("pids.current")),
                            "limit": _int(self._f("pids.max"), MAX_UINT64)})

    def blkio(self) -> Json:
        entries = []
        for line in _text(self._f("io.stat")).splitlines():
            dev, *pairs = line.split()
            major, _, minor = dev.partition(":")
            values = dict(p.split("=", 1) for p in pairs if "=" in p)
            for op, key in (("read", "rbytes"), ("write", "wbytes")):
                entries.append({"major": int(major), "minor": int(minor), "op": op, "value": int(values.get(key, 0))})
        return {**_empty_blkio(), "io_service_bytes_recursive": entries or None}


Cgroup = CgroupV1 | CgroupV2

_BLKIO_KEYS = ("io_service_bytes_recursive", "io_serviced_recursive", "io_queue_recursive",
               "io_service_time_recursive", "io_wait_time_recursive", "io_merged_recursive",
               "io_time_recursive", "sectors_recursive")


def _empty_blkio() -> Json:
    return {k: None for k in _BLKIO_KEYS}


def _empty_cpu() -> Json:
    return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}


def open_cgroup(pid: int) -> Cgroup:
    return CgroupV2(pid) if cgroup_version() == "2" else CgroupV1(pid)


# ---- host and namespace counters ----------------------------------------
def host_cpu() -> tuple[int, int]:
    """Host CPU time in ns as Docker computes system_cpu_usage, and the online CPU count."""
    total, cpus = 0, 0
    with open("/proc/stat") as f:
        for line in f:
            if not line.startswith("cpu"):
                break
            if line.startswith("cpu "):
                total = sum(int(v) for v in line.split()[1:8]) * NS_PER_SEC // CLK_TCK
            else:
                cpus += 1
    return total, cpus


def net_dev(pid: int) -> dict[str, Json]:
    """Interface counters of the network namespace `pid` is in, without loopback (as Docker)."""
    out = {}
    for line in _text(f"/proc/{pid}/net/dev").splitlines()[2:]:
        name, _, data = line.partition(":")
        name = name.strip()
        v = [int(x) for x in data.split()]
        if name == "lo" or len(v) < 12:
            continue
        out[name] = {"rx_bytes": v[0], "rx_packets": v[1], "rx_errors": v[2], "rx_dropped": v[3],
                     "tx_bytes": v[8], "tx_packets": v[9], "tx_errors": v[10], "tx_dropped": v[11]}
    return out


# ---- docker top ----------------------------------------------------------
_LONG_WITH_ARG = {"--cols", "--columns", "--Group", "--group", "--lines", "--pid", "--ppid", "--quick-pid",
                  "--rows", "--sid", "--sort", "--tty", "--User", "--user", "--width"}
_SHORT_WITH_ARG = {"-C", "-G", "-g", "-O", "-p", "-q", "-s", "-t", "-u", "-U"}


def _ps_option(opt: str) -> tuple[bool, bool]:
    """(opt selects output columns, the next argument is opt's value); Docker's customFields rules."""
    if opt.startswith("--") and len(opt) > 2:
        name, eq, _ = opt.partition("=")
        if name == "--format":
            return True, False
        if name in _LONG_WITH_ARG:
            return False, not eq
    if len(opt) >= 2 and opt[0] == "-":
        if opt[:2] == "-o":
            return True, False
        if opt[:2] in _SHORT_WITH_ARG:
            return False, len(opt) == 2
    for i, ch in enumerate(opt):
        if ch == "o":
            return True, False
        if ch in "pqtUOk":
            return False, i + 1 == len(opt)
    return False, False


def custom_columns(args: list[str]) -> bool:
    """Whether ps args choose their own columns (then Docker prepends `-opid` to find PIDs)."""
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg.startswith(("-o", "o", "--format")):
            return True
        found, skip = _ps_option(arg)
        if found:
            return True
    return False


def _fields(line: str) -> list[str]:
    return [f for f in re.split(r"[\t\n\f\r ]+", line) if f]


def parse_ps(output: str, pids: set[int], pid_first: bool) -> Json:
    """Header plus the rows of `pids`; thread rows ("-" PID) follow their process, as in Docker."""
    lines = output.split("\n")
    titles = _fields(lines[0])
    no_pid = EngineError("Couldn't find PID field in ps output")
    if pid_first:
        if not titles or titles[0] != "PID":
            raise no_pid
        index, first, titles = 0, 1, titles[1:]
    elif "PID" in titles:
        index, first = titles.index("PID"), 0
    else:
        raise no_pid
    processes: list[list[str]] = []
    keep = False
    for line in lines[1:]:
        fields = _fields(line)
        if not fields:
            continue
        if fields[index] != "-":
            if not fields[index].isdigit():
                raise InternalError(f"Unexpected pid '{fields[index]}': strconv.Atoi: parsing "
                                  f"\"{fields[index]}\": invalid syntax")
            keep = int(fields[index]) in pids
        if keep:
            row = fields[first:]
            processes.append(row[:len(titles) - 1] + [" ".join(row[len(titles) - 1:])])
    return {"Titles": titles, "Processes": processes or None}


def run_ps(args: list[str], pids: list[int]) -> str:
    """`ps ARGS -qPIDS`, or plain `ps ARGS` when the options refuse -q (like f or -C)."""
    proc = subprocess.run(["ps", *args, "-q" + ",".join(map(str, pids))], check=False, capture_output=True, timeout=30)
    if proc.returncode != 0:
        proc = subprocess.run(["ps", *args], check=False, capture_output=True, timeout=30)
        if proc.returncode != 0:
            first = proc.stderr.decode(errors="replace").split("\n", 1)[0]
            # dockerd answers 500 here, but ps refuses only the client's options
            raise InvalidParameter(f"ps: {first or f'exit status {proc.returncode}'}")
    return proc.stdout.decode(errors="replace")


class StatsService:
    def __init__(self, containers: ContainerService, runtime: ContainerRuntime) -> None:
        self.containers = containers
        self.runtime = runtime
        self.machine_memory = host_memory()

    # ---- stats ------------------------------------------------------
    def snapshot(self, ref: str, one_shot: bool = False) -> Json:
        """stream=false: like Docker, a second sample ~1s later gives CPU % its baseline; one-shot skips it."""
        c = self.containers.get(ref)
        first = self._sample(c)
        if first is None or one_shot:
            return self._frame(c, first, None)
        time.sleep(INTERVAL)
        c = self.containers.get(c.id)
        return self._frame(c, self._sample(c), first)

    def stream(self, ref: str, cancel: threading.Event) -> Iterator[Json]:
        """One frame per second, each carrying the previous one's CPU as precpu, until cancelled or removed."""
        cid = self.containers.resolve(ref)
        prev: Json | None = None
        while not cancel.is_set():
            try:
                c = self.containers.get(cid)
            except NotFound:
                return
            sample = self._sample(c)
            yield self._frame(c, sample, prev)
            prev = sample
            cancel.wait(INTERVAL)

    def _sample(self, c: ContainerRecord) -> Json | None:
        """Raw counters of a running container, or None once it has no cgroup (stopped, exiting)."""
        state = c.state
        pid = state.pid
        if not state.running or state.restarting or not pid:
            return None
        try:
            if _proc_cgroups(pid) == _proc_cgroups(os.getpid()):
                # no cgroup of its own (rootless on cgroup v1): its counters would be the whole user's
                empty = _empty_cpu()
                cpu = {"cpu_usage": empty["cpu_usage"], "throttling": empty["throttling_data"]}
                memory, pids, blkio = {}, {}, _empty_blkio()
            else:
                cg = open_cgroup(pid)
                cpu = cg.cpu()
                memory, pids, blkio = cg.memory(), cg.pids(), cg.blkio()
            networks = {} if c.host_config.network_mode == "host" else net_dev(pid)
        except (FileNotFoundError, KeyError):  # exited meanwhile: /proc entry or cgroup gone
            return None
        system, cpus = host_cpu()
        if memory.get("limit", 0) > self.machine_memory > 0:
            memory["limit"] = self.machine_memory
        return {
            "read": rfc3339_ns(),
            "pids_stats": pids,
            "blkio_stats": blkio,
            "cpu_stats": {"cpu_usage": cpu["cpu_usage"], "system_cpu_usage": system, "online_cpus": cpus,
                          "throttling_data": cpu["throttling"]},
            "memory_stats": memory,
            "networks": networks,
        }

    @staticmethod
    def _frame(c: ContainerRecord, sample: Json | None, prev: Json | None) -> Json:
        """Docker's StatsResponse; a container that is not running gets Docker's all-zero one."""
        if sample is None:
            return {"read": ZERO_TIME, "preread": ZERO_TIME, "pids_stats": {}, "blkio_stats": _empty_blkio(),
                    "num_procs": 0, "storage_stats": {}, "cpu_stats": _empty_cpu(), "precpu_stats": _empty_cpu(),
                    "memory_stats": {}, "name": c.name, "id": c.id}
        frame = {
            "read": sample["read"], "preread": prev["read"] if prev else ZERO_TIME,
            "pids_stats": sample["pids_stats"], "blkio_stats": sample["blkio_stats"], "num_procs": 0,
            "storage_stats": {}, "cpu_stats": sample["cpu_stats"],
            "precpu_stats": prev["cpu_stats"] if prev else _empty_cpu(),
            "memory_stats": sample["memory_stats"], "name": c.name, "id": c.id,
        }
        if sample["networks"]:
            frame["networks"] = sample["networks"]
        return frame

    # ---- top --------------------------------------------------------
    def top(self, ref: str, ps_args: str = "") -> Json:
        c = self.containers.get(ref)
        cid = c.id
        check(Op.TOP, c)
        pids = self.runtime.pids(cid)
        args = (ps_args or "-ef").split(" ")
        pid_first = bool(ps_args) and custom_columns(args)
        if pid_first:
            args = ["-opid", *args]
        result = parse_ps(run_ps(args, pids), set(pids), pid_first)
        self.containers.log_event(c, "top")
        return result
