"""`docker stats`: per-container usage computed from the stats API the way the docker CLI does.

One reader thread per container follows its stats stream; the main loop
renders a frame every half second. Frames are written exactly as docker 28
writes them (cursor home, the table, the table again with erase-line codes,
erase-below), on a terminal or not.
"""
from __future__ import annotations

import contextlib
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests

from pydock_cli import formatting
from pydock_cli.client import DaemonError
from pydock_cli.session import CliError, Session
from pydock_cli.system import bytes_size
from pydock_cli.template import Context, TemplateError

STATS_TABLE = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"
STATS_HEADERS = {"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
                 "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O",
                 "PIDs": "PIDS"}
GO_TYPE = "*container.statsContext"
FRAME_SECONDS = 0.5


def cpu_percent(v: dict[str, Any]) -> float:
    cpu, pre = v.get("cpu_stats") or {}, v.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (pre.get("cpu_usage") or {}).get("total_usage", 0)
    system_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or [])
    if system_delta > 0 and cpu_delta > 0:
        return cpu_delta / system_delta * online * 100.0
    return 0.0


def memory_no_cache(mem: dict[str, Any]) -> float:
    """Usage minus inactive page cache (cgroup v1 `total_inactive_file`, v2 `inactive_file`)."""
    usage, stats = mem.get("usage", 0), mem.get("stats") or {}
    if "total_inactive_file" in stats and stats["total_inactive_file"] < usage:
        return float(usage - stats["total_inactive_file"])
    if stats.get("inactive_file", 0) < usage:
        return float(usage - stats.get("inactive_file", 0))
    return float(usage)


def block_io(v: dict[str, Any]) -> tuple[int, int]:
    read = write = 0
    for entry in (v.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
        op = (entry.get("op") or " ")[0].lower()
        if op == "r":
            read += entry.get("value", 0)
        elif op == "w":
            write += entry.get("value", 0)
    return read, write


def network_io(v: dict[str, Any]) -> tuple[int, int]:
    nets = (v.get("networks") or {}).values()
    return sum(n.get("rx_bytes", 0) for n in nets), sum(n.get("tx_bytes", 0) for n in nets)


@dataclass
class Entry:
    """One container's row; `valid` is False until a sample arrives or after its stream failed."""

    container: str
    data: dict[str, Any] = field(default_factory=dict)
    valid: bool = False

    def update(self, v: dict[str, Any]) -> None:
        mem = v.get("memory_stats") or {}
        used, limit = memory_no_cache(mem), float(mem.get("limit", 0))
        self.data = {"id": v.get("id", ""), "name": (v.get("name") or "").removeprefix("/"),
                     "cpu": cpu_percent(v), "mem": used, "limit": limit,
                     "mem_pct": used / limit * 100.0 if limit else 0.0,
                     "net": network_io(v), "blk": block_io(v), "pids": (v.get("pids_stats") or {}).get("current", 0)}
        self.valid = True

    def row(self, trunc: bool) -> Context:
        d = self.data
        ident = d.get("id", "")
        if self.valid:
            values = {"CPUPerc": f"{d['cpu']:.2f}%", "MemUsage": f"{bytes_size(d['mem'])} / {bytes_size(d['limit'])}",
                      "MemPerc": f"{d['mem_pct']:.2f}%",
                      "NetIO": " / ".join(formatting.human_size(n, 3) for n in d["net"]),
                      "BlockIO": " / ".join(formatting.human_size(n, 3) for n in d["blk"]), "PIDs": str(d["pids"])}
        else:
            values = {"CPUPerc": "--", "MemUsage": "-- / --", "MemPerc": "--", "NetIO": "--", "BlockIO": "--",
                      "PIDs": "--"}
        return Context(GO_TYPE, {"Container": self.container, "ID": ident[:12] if trunc else ident,
                                 "Name": d.get("name") or "--", **values})


def _render(opts: dict[str, Any], entries: list[Entry]) -> str:
    fmt = opts["format"]
    rows = [e.row(not opts["no_trunc"]) for e in entries]
    try:
        return formatting.render(STATS_TABLE if fmt in ("", "table") else fmt, rows, STATS_HEADERS, GO_TYPE)
    except TemplateError as e:  # docker words a stats template failure differently from other commands
        raise TemplateError(str(e).replace("failed to execute template: ", "template parsing error: ", 1)) from None


def _targets(s: Session, opts: dict[str, Any]) -> list[str]:
    listed = s.client.json("GET", "/containers/json", {"all": opts["all"]})
    return [c["Id"][:12] for c in listed]


def _first_samples(s: Session, refs: list[str]) -> list[Entry]:
    """`--no-stream`: one sample each, fetched together (each takes the daemon a sampling interval);
    any failure ends the command with every error, as docker."""
    def one(ref: str) -> Entry | DaemonError:
        entry = Entry(ref)
        try:
            entry.update(s.client.json("GET", f"/containers/{ref}/stats", {"stream": False}))
        except DaemonError as e:
            return e
        return entry

    with ThreadPoolExecutor(max_workers=min(16, len(refs) or 1)) as pool:
        results = list(pool.map(one, refs))
    errors = [str(r) for r in results if isinstance(r, DaemonError)]
    if errors:
        raise CliError("\n".join(errors))
    return [r for r in results if isinstance(r, Entry)]


class _Follower:
    """Keeps one container's Entry current from its stats stream until the stream ends or `stop()`."""

    def __init__(self, s: Session, entry: Entry) -> None:
        self.entry = entry
        self.error: DaemonError | None = None
        self.first = threading.Event()
        self._s = s
        self._resp: requests.Response | None = None
        self._stopped = False
        threading.Thread(target=self._run, daemon=True, name="pydock-stats").start()

    def _run(self) -> None:
        try:
            self._resp = self._s.client.get(f"/containers/{self.entry.container}/stats", {"stream": True},
                                            stream=True)
            if self._stopped:
                return
            for v in self._s.client.json_lines(self._resp):
                self.entry.update(v)
                self.first.set()
        except DaemonError as e:
            self.error = e
        except (requests.RequestException, ValueError, OSError):
            pass
        self.entry.valid = False  # a stopped or removed container shows "--", as in docker
        self.first.set()

    def stop(self) -> None:
        """Shuts the socket down rather than closing the response under the reading thread."""
        self._stopped = True
        if self._resp is not None:
            with contextlib.suppress(OSError):
                self._s.client.socket_of(self._resp).shutdown(socket.SHUT_RDWR)


def _follow_all(s: Session, refs: list[str]) -> dict[str, _Follower]:
    """Streams for every container, each waited for until its first sample; errors end the command."""
    followers = {ref: _Follower(s, Entry(ref)) for ref in refs}
    for f in followers.values():
        f.first.wait()
    errors = [str(f.error) for f in followers.values() if f.error]
    if errors:
        for f in followers.values():
            f.stop()
        raise CliError("\n".join(errors))
    return followers


def frame(table: str) -> str:
    """docker 28's frame: home, the table, then every line again followed by erase-line, then erase-below."""
    text = "\033[H" + table
    return text + "".join(line + " \033[K\n" for line in text.split("\n")) + "\033[J"


def _refresh(s: Session, opts: dict[str, Any], followers: dict[str, _Follower]) -> None:
    """Without arguments docker tracks containers as they start and stop; the list is re-read each frame."""
    current = _targets(s, opts)
    for ref in set(followers) - set(current):
        followers.pop(ref).stop()
    for ref in current:
        if ref not in followers:
            followers[ref] = _Follower(s, Entry(ref))


def stats(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    """Runs until interrupted unless `--no-stream`."""
    refs = args or _targets(s, opts)
    if opts["no_stream"]:
        s.out.write(_render(opts, _first_samples(s, refs)))
        return 0
    followers = _follow_all(s, refs)
    try:
        while True:
            s.out.write(frame(_render(opts, [f.entry for f in followers.values()])))
            time.sleep(FRAME_SECONDS)
            if not args:
                _refresh(s, opts, followers)
    finally:
        for f in followers.values():
            f.stop()
