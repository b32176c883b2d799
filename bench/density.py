"""Container density: start N idle containers, report seconds per container and memory held.

Each contender (a private pydockd, and dockerd when one answers on
/var/run/docker.sock) gets N `busybox sleep` containers started one after
another with `docker run -d`. Reported per contender: wall seconds per
container, the daemon's RSS with N containers up, and the total RSS of the
per-container monitors (pydock's shims, containerd's shims), found as the
parents of the containers' init processes. Side by side, pydockd's numbers
are given as ratios against dockerd's. Everything started is removed.

    python3 bench/density.py [--count 50]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from run_latency import (
    DOCKERD_IMAGE,
    DOCKERD_SOCK,
    docker,
    docker_answers,
    docker_env,
    remove_all_containers,
    scratch,
    start_pydockd,
)

MIB = 1024 * 1024
# dockerd's work is split with containerd (its own or the system's): both count as "the daemon"
CONTAINERD_SOCKS = ("/run/containerd/containerd.sock", "/var/run/docker/containerd/containerd.sock")


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


def daemon_pid(sock: str) -> int:
    """The process listening on a unix socket, from /proc/net/unix and the sockets' inodes."""
    with open("/proc/net/unix") as f:
        inodes = {line.split()[6] for line in f if line.rstrip().endswith(" " + sock)}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(os.readlink(f"/proc/{pid}/fd/{fd}")[8:-1] in inodes for fd in fds):
                return int(pid)
        except OSError:
            continue
    raise RuntimeError(f"no process listens on {sock}")


def start_containers(env: dict[str, str], image: str, count: int) -> tuple[list[str], float]:
    ids: list[str] = []
    t0 = time.perf_counter()
    try:
        for _ in range(count):
            ids.append(docker(env, "run", "-d", "--label", "pydock-bench=density", image, "sleep", "3600").strip())
    except BaseException:
        remove(env, ids)
        raise
    return ids, time.perf_counter() - t0


def remove(env: dict[str, str], ids: list[str]) -> None:
    if ids:
        docker(env, "rm", "-f", *ids)


def measure(env: dict[str, str], socks: list[str], image: str, count: int) -> Result:
    """`socks`: the daemon processes' listening sockets (the first is the Docker API's)."""
    ids, elapsed = start_containers(env, image, count)
    try:
        pids = docker(env, "inspect", "-f", "{{.State.Pid}}", *ids).split()
        monitors = {parent(int(p)) for p in pids if p != "0"}
        daemon = sum(rss(daemon_pid(s)) for s in socks if os.path.exists(s))
        return Result(elapsed / count, daemon, sum(rss(m) for m in monitors), len(monitors))
    finally:
        remove(env, ids)


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


def run(count: int) -> None:
    with ExitStack() as stack:
        root, rootfs_tar, config_dir = scratch(stack)
        host = start_pydockd(root, stack)
        env = docker_env(host, config_dir)
        stack.callback(remove_all_containers, env)
        docker(env, "import", rootfs_tar, "busybox:latest")
        results = {"pydockd": measure(env, [host.removeprefix("unix://")], "busybox:latest", count)}
        if docker_answers(DOCKERD_SOCK):
            denv = docker_env(f"unix://{DOCKERD_SOCK}", config_dir)
            docker(denv, "import", rootfs_tar, DOCKERD_IMAGE)
            stack.callback(docker, denv, "rmi", DOCKERD_IMAGE)
            results["dockerd"] = measure(denv, [DOCKERD_SOCK, *CONTAINERD_SOCKS], DOCKERD_IMAGE, count)
        report(count, results)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=50, help="idle containers to start (default 50)")
    args = p.parse_args(argv)
    if args.count < 1:
        p.error("--count must be >= 1")
    run(args.count)


if __name__ == "__main__":
    main()
