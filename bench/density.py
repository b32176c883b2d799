"""Container density: start N idle containers, report seconds per container and memory held.

Each contender (a private pydockd and a private dockerd, bench/dockerd.py;
`--no-dockerd` leaves dockerd out) gets N `busybox sleep` containers started
with `docker run -d`, the contenders taking turns container by container so
that machine noise hits both alike. Reported per contender: seconds per
container, the daemon's RSS with N containers up, and the total RSS of the
per-container monitors (pydock's shims, containerd's shims), found as the
parents of the containers' init processes. Side by side, pydockd's numbers
are given as ratios against dockerd's. Everything started is removed.

    python3 bench/density.py [--count 50] [--no-dockerd]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dockerd
from common import daemon_pids, docker, scratch

MIB = 1024 * 1024


@dataclass
class Result:
    seconds_per_container: float
    daemon_rss: int
    monitors_rss: int
    monitors: int


def rss(pid: int) -> int:
    """Resident set size in bytes; 0 if the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def start_containers(envs: dict[str, dict[str, str]], count: int) -> tuple[dict[str, list[str]], dict[str, float]]:
    """`count` idle containers on each daemon, taking turns (the first to go alternating); their IDs and the
    seconds each daemon's `docker run -d` took in all."""
    ids: dict[str, list[str]] = {name: [] for name in envs}
    elapsed = dict.fromkeys(envs, 0.0)
    names = list(envs)
    for i in range(count):
        for name in names[i % len(names):] + names[:i % len(names)]:
            t0 = time.perf_counter()
            ids[name].append(docker(envs[name], "run", "-d", "--label", "pydock-bench=density", "busybox:latest",
                                    "sleep", "3600").strip())
            elapsed[name] += time.perf_counter() - t0
    return ids, elapsed


def measure(env: dict[str, str], ids: list[str], elapsed: float, daemon_pids: list[int]) -> Result:
    """`daemon_pids`: the daemon's processes (dockerd's and its containerd's)."""
    pids = docker(env, "inspect", "-f", "{{.State.Pid}}", *ids).split()
    monitors = {parent(int(p)) for p in pids if p != "0"}
    return Result(elapsed / len(ids), sum(rss(p) for p in daemon_pids), sum(rss(m) for m in monitors),
                  len(monitors))


def line(name: str, count: int, r: Result) -> str:
    return (f"{name:8s} {count} containers  {r.seconds_per_container:.3f} s/container  "
            f"daemon RSS {r.daemon_rss / MIB:.1f} MiB  "
            f"monitors RSS {r.monitors_rss / MIB:.1f} MiB ({r.monitors} monitors)")


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def report(count: int, results: dict[str, Result]) -> None:
    for name, r in results.items():
        print(line(name, count, r))
    if "dockerd" in results:
        p, d = results["pydockd"], results["dockerd"]
        print(f"pydockd/dockerd seconds per container ratio: {ratio(p.seconds_per_container, d.seconds_per_container)}")
        print(f"pydockd/dockerd daemon RSS ratio: {ratio(p.daemon_rss, d.daemon_rss)}")
        print(f"pydockd/dockerd monitors RSS ratio: {ratio(p.monitors_rss, d.monitors_rss)}")


def run(count: int, with_dockerd: bool) -> None:
    with ExitStack() as stack:
        root, rootfs_tar, config_dir = scratch(stack)
        envs = dockerd.daemons(stack, root, rootfs_tar, config_dir, with_dockerd)
        ids, elapsed = start_containers(envs, count)
        results = {}
        for name, env in envs.items():
            results[name] = measure(env, ids[name], elapsed[name], daemon_pids(env, name == "dockerd"))
        report(count, results)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=50, help="idle containers to start (default 50)")
    dockerd.add_option(p)
    args = p.parse_args(argv)
    if args.count < 1:
        p.error("--count must be >= 1")
    run(args.count, args.dockerd)


if __name__ == "__main__":
    main()
