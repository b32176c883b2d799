"""Throughput: N concurrent `docker run --rm busybox true`, pydockd against a private dockerd and bare `runc run`.

Each round starts N runs at once on one contender and waits for all of
them; rounds take turns between the contenders (the first to go rotating),
so machine noise hits all alike. Reported per contender: the median wall
time of a round (all N done), the median time of one run (p50) and the rate
(runs per second over a round's wall time) and, for the daemons, the CPU
time the daemon itself used per run (dockerd's with its containerd's; not
the per-container monitors): with the machine's cores saturated, that is
what a daemon adds to the runtime's own work. Then the ratios. The target
(issue 17) is pydockd's rate at least twice dockerd's. The runc contender
runs N `runc run` of one busybox bundle under distinct IDs: the floor.

    python3 bench/concurrent_runs.py [--concurrency 50] [--rounds 3] [--warmup 1] [--no-dockerd]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dockerd
from common import DOCKER, cpu_seconds, daemon_pids, scratch, timed
from run_latency import RUNC, make_runc_bundle

TARGET = 2.0  # pydockd's rate over dockerd's


@dataclass
class Rounds:
    """What one contender's rounds measured: each round's wall time and every run's own time."""

    walls: list[float] = field(default_factory=list)
    runs: list[float] = field(default_factory=list)
    cpu: float = 0.0  # the daemon's CPU seconds over all rounds (0 for bare runc)

    def rate(self, concurrency: int) -> float:
        return concurrency / statistics.median(self.walls)


def one_round(start: Callable[[int], float], concurrency: int) -> tuple[float, list[float]]:
    """`concurrency` runs at once (`start(i)` is run i's own time); the wall time until all ended, and those."""
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        t0 = time.perf_counter()
        times = list(pool.map(start, range(concurrency)))
        return time.perf_counter() - t0, times


@dataclass
class Contender:
    """Run i of a round (its own time), and the processes whose CPU time counts as the contender's."""

    start: Callable[[int], float]
    pids: list[int] = field(default_factory=list)


def docker_contender(env: dict[str, str], pids: list[int]) -> Contender:
    argv = [DOCKER, "run", "--rm", "busybox:latest", "true"]
    return Contender(lambda _i: timed(argv, env), pids)


def runc_contender(root: str, rootfs_tar: str, stack: ExitStack) -> Contender:
    bundle = os.path.join(root, "bundle")
    make_runc_bundle(bundle, rootfs_tar)
    runc_root = os.path.join(root, "runc")
    prefix = f"pydock-bench-{os.getpid()}-"

    def cleanup() -> None:
        for name in os.listdir(runc_root) if os.path.isdir(runc_root) else []:
            subprocess.run([RUNC, "--root", runc_root, "delete", "--force", name], check=False, capture_output=True)
    stack.callback(cleanup)
    return Contender(lambda i: timed([RUNC, "--root", runc_root, "run", "--bundle", bundle, f"{prefix}{i}"]))


def measure(contenders: dict[str, Contender], concurrency: int, rounds: int, warmup: int) -> dict[str, Rounds]:
    names = list(contenders)
    for _ in range(warmup):
        for name in names:
            one_round(contenders[name].start, concurrency)
    results = {name: Rounds() for name in names}
    for i in range(rounds):
        k = i % len(names)
        for name in names[k:] + names[:k]:
            cpu = cpu_seconds(contenders[name].pids)
            wall, times = one_round(contenders[name].start, concurrency)
            results[name].cpu += cpu_seconds(contenders[name].pids) - cpu
            results[name].walls.append(wall)
            results[name].runs += times
    return results


def report(results: dict[str, Rounds], concurrency: int) -> None:
    for name, r in results.items():
        cpu = f"  daemon CPU {r.cpu / len(r.runs) * 1000:6.1f} ms/run" if name != "runc" else ""
        print(f"{name:8s} {concurrency} concurrent runs  wall median {statistics.median(r.walls):7.2f} s  "
              f"p50 per run {statistics.median(r.runs) * 1000:8.1f} ms  {r.rate(concurrency):6.1f} runs/s  "
              f"over {len(r.walls)} rounds{cpu}")
    pydockd = results["pydockd"].rate(concurrency)
    print(f"pydockd/runc rate ratio: {pydockd / results['runc'].rate(concurrency):.2f}x")
    if "dockerd" in results:
        p, d = results["pydockd"], results["dockerd"]
        print(f"pydockd/dockerd daemon CPU per run ratio: {(p.cpu / len(p.runs)) / (d.cpu / len(d.runs)):.2f}x")
        print(f"pydockd/dockerd rate ratio: {pydockd / results['dockerd'].rate(concurrency):.2f}x "
              f"(target >= {TARGET}x)")


def run(concurrency: int, rounds: int, warmup: int, with_dockerd: bool) -> None:
    with ExitStack() as stack:
        root, rootfs_tar, config_dir = scratch(stack)
        contenders = {"runc": runc_contender(root, rootfs_tar, stack)}
        for name, env in dockerd.daemons(stack, root, rootfs_tar, config_dir, with_dockerd).items():
            contenders[name] = docker_contender(env, daemon_pids(env, name == "dockerd"))
        report(measure(contenders, concurrency, rounds, warmup), concurrency)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--concurrency", type=int, default=50, help="runs started at once (default 50)")
    p.add_argument("--rounds", type=int, default=3, help="measured rounds per contender (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="unmeasured rounds per contender first (default 1)")
    dockerd.add_option(p)
    args = p.parse_args(argv)
    if args.concurrency < 1 or args.rounds < 1 or args.warmup < 0:
        p.error("--concurrency and --rounds must be >= 1 and --warmup >= 0")
    run(args.concurrency, args.rounds, args.warmup, args.dockerd)


if __name__ == "__main__":
    main()
