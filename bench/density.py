"""Container density: start N idle containers, report seconds and host memory per container.

Contenders: a private pydockd with the compiled monitor (`pydockd-c`, the
default), one with the Python monitor (`pydockd-py`) and a private dockerd
(bench/dockerd.py; `--no-dockerd` leaves it out). Each gets N `busybox sleep`
containers started with `docker run -d`, the contenders taking turns
container by container so that machine noise hits all alike.

Reported per contender: seconds per container; the daemon's RSS before the
first container and with N up (issue 17 wants it flat); and the per-container
monitors (pydock's monitors, containerd's shims), found as the parents of the
containers' init processes, in MiB per container as RSS and as PSS (from
/proc/PID/smaps_rollup: shared pages, such as the C library or the Python
interpreter's, split between the processes sharing them, which is what the
host really pays for each). `host MiB/container` adds the monitor's PSS and
the daemon's growth divided by N: issue 17's target is <= 3 MiB. Everything
started is removed.

    python3 bench/density.py [--count 200] [--no-dockerd]
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
from common import daemon_pids, docker, docker_env, remove_all_containers, scratch, start_pydockd

MIB = 1024 * 1024
TARGET_MIB = 3.0  # issue 17: per container, monitor plus the daemon's share
PYDOCKDS = {"pydockd-c": "c", "pydockd-py": "python"}


@dataclass
class Result:
    seconds_per_container: float
    daemon_rss_before: int
    daemon_rss_after: int
    monitors_rss: int
    monitors_pss: int
    monitors: int
    count: int

    def per_container(self, total: int) -> float:
        return total / self.count / MIB

    @property
    def host_per_container(self) -> float:
        """Monitor PSS plus the daemon's growth, per container, in MiB."""
        return self.per_container(self.monitors_pss + max(0, self.daemon_rss_after - self.daemon_rss_before))


def memory(pid: int) -> tuple[int, int]:
    """Resident and proportional set sizes in bytes; (0, 0) if the process is gone."""
    found = {"Rss:": 0, "Pss:": 0}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                key, value, *_ = line.split()
                if key in found:
                    found[key] = int(value) * 1024
    except (OSError, ValueError):
        pass
    return found["Rss:"], found["Pss:"]


def parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def start_containers(envs: dict[str, dict[str, str]], count: int) -> tuple[dict[str, list[str]], dict[str, float]]:
    """`count` idle containers on each daemon, taking turns (the first to go rotating); their IDs and the
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


def rss_of(pids: list[int]) -> int:
    return sum(memory(p)[0] for p in pids)


def measure(env: dict[str, str], ids: list[str], elapsed: float, pids: list[int], before: int) -> Result:
    """`pids`: the daemon's processes (dockerd's and its containerd's); `before`: their RSS with no container."""
    inits = docker(env, "inspect", "-f", "{{.State.Pid}}", *ids).split()
    monitors = {parent(int(p)) for p in inits if p != "0"}
    sizes = [memory(m) for m in monitors]
    return Result(elapsed / len(ids), before, rss_of(pids), sum(r for r, _ in sizes), sum(p for _, p in sizes),
                  len(monitors), len(ids))


def line(name: str, r: Result) -> str:
    return (f"{name:10s} {r.count} containers  {r.seconds_per_container:.3f} s/container  "
            f"daemon RSS {r.daemon_rss_before / MIB:.1f} -> {r.daemon_rss_after / MIB:.1f} MiB  "
            f"monitor RSS {r.per_container(r.monitors_rss):.2f} PSS {r.per_container(r.monitors_pss):.2f} "
            f"MiB/container ({r.monitors} monitors)  host {r.host_per_container:.2f} MiB/container")


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def report(results: dict[str, Result]) -> None:
    for name, r in results.items():
        print(line(name, r))
    best = results["pydockd-c"].host_per_container
    print(f"pydockd-c host MiB/container: {best:.2f} (target <= {TARGET_MIB:.1f})")
    base = results.get("dockerd")
    for name in PYDOCKDS:
        if base is not None:
            r = results[name]
            print(f"{name}/dockerd: s/container {ratio(r.seconds_per_container, base.seconds_per_container)}, "
                  f"monitor PSS {ratio(r.monitors_pss, base.monitors_pss)}, "
                  f"monitor RSS {ratio(r.monitors_rss, base.monitors_rss)}, "
                  f"daemon RSS {ratio(r.daemon_rss_after, base.daemon_rss_after)}")


def run(count: int, with_dockerd: bool) -> None:
    with ExitStack() as stack:
        root, rootfs_tar, config_dir = scratch(stack)
        envs = {}
        for name, kind in PYDOCKDS.items():
            sub = os.path.join(root, name)
            os.makedirs(sub)
            envs[name] = docker_env(start_pydockd(sub, stack, args=("--monitor", kind)), config_dir)
        if with_dockerd:
            envs["dockerd"] = docker_env(dockerd.start_dockerd(root, stack), config_dir)
        for env in envs.values():
            stack.callback(remove_all_containers, env)
            docker(env, "import", rootfs_tar, "busybox:latest")
        pids = {name: daemon_pids(env, name == "dockerd") for name, env in envs.items()}
        before = {name: rss_of(p) for name, p in pids.items()}
        ids, elapsed = start_containers(envs, count)
        time.sleep(1)  # let the last monitors settle
        report({name: measure(env, ids[name], elapsed[name], pids[name], before[name])
                for name, env in envs.items()})


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--count", type=int, default=200, help="idle containers to start on each daemon (default 200)")
    dockerd.add_option(p)
    args = p.parse_args(argv)
    if args.count < 1:
        p.error("--count must be >= 1")
    run(args.count, args.dockerd)


if __name__ == "__main__":
    main()
