"""`docker ps` speed with many containers: pydockd against a private dockerd.

Each daemon gets N created containers (made through the API, several at a
time, for speed) and, with --running M, M of them started (`sleep`). Then
`docker ps -a` (the CLI, all N listed), `docker ps` (the running ones) and
the bare API call `GET /containers/json?all=1` are timed, the daemons taking
turns call by call. The target (issue 17) is `docker ps` with 500 containers
in at most 50 ms (`docker ps -a` cannot be: the CLI alone takes longer to
print 500 rows); the ratios are pydockd/dockerd.

    python3 bench/ps_speed.py [--count 500] [--running 0] [--runs 15] [--no-dockerd]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dockerd
from common import DOCKER, UnixHTTPConnection, measure, scratch, timed

TARGET_MS = 50.0  # `docker ps` with 500 containers (issue 17); the CLI alone takes longer to print 500 rows
WORKERS = 8


def api(sock: str, method: str, path: str, body: object = None) -> bytes:
    conn = UnixHTTPConnection(sock, timeout=120)
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        if resp.status >= 300:
            raise RuntimeError(f"{method} {path}: {resp.status} {data.decode(errors='replace')}")
        return data
    finally:
        conn.close()


def populate(sock: str, count: int, running: int) -> None:
    """`count` containers labelled for the benchmark, the first `running` of them started."""
    def create(i: int) -> None:
        body = {"Image": "busybox:latest", "Cmd": ["sleep", "3600"], "Labels": {"pydock-bench": "ps"}}
        cid = json.loads(api(sock, "POST", f"/containers/create?name=ps-bench-{i}", body))["Id"]
        if i < running:
            api(sock, "POST", f"/containers/{cid}/start")
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        list(pool.map(create, range(count)))


def api_contender(sock: str, count: int) -> Callable[[], float]:
    def call() -> float:
        t0 = time.perf_counter()
        listed = json.loads(api(sock, "GET", "/containers/json?all=1"))
        elapsed = time.perf_counter() - t0
        if len(listed) != count:
            raise RuntimeError(f"GET /containers/json listed {len(listed)} containers, not {count}")
        return elapsed
    return call


def report(samples: dict[str, list[float]], count: int, running: int) -> None:
    medians = {name: statistics.median(values) for name, values in samples.items()}
    for name, med in medians.items():
        print(f"{name:16s} median {med * 1000:8.1f} ms  over {len(samples[name])} runs  "
              f"({count} containers, {running} running)")
    if count >= 500:
        verdict = "met" if medians["pydockd ps"] * 1000 <= TARGET_MS else "NOT met"
        print(f"target (docker ps with {count} containers <= {TARGET_MS:.0f} ms): {verdict}")
    for kind in ("ps -a", "ps", "api"):
        if f"dockerd {kind}" in medians:
            print(f"pydockd/dockerd {kind} ratio: {medians[f'pydockd {kind}'] / medians[f'dockerd {kind}']:.2f}x")


def run(count: int, running: int, runs: int, with_dockerd: bool) -> None:
    with ExitStack() as stack:
        root, rootfs_tar, config_dir = scratch(stack)
        contenders: dict[str, Callable[[], float]] = {}
        for name, env in dockerd.daemons(stack, root, rootfs_tar, config_dir, with_dockerd).items():
            sock = env["DOCKER_HOST"].removeprefix("unix://")
            populate(sock, count, running)
            contenders[f"{name} ps -a"] = lambda env=env: timed([DOCKER, "ps", "-a"], env)
            contenders[f"{name} ps"] = lambda env=env: timed([DOCKER, "ps"], env)
            contenders[f"{name} api"] = api_contender(sock, count)
        report(measure(contenders, runs, 2), count, running)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=500, help="containers created (default 500)")
    p.add_argument("--running", type=int, default=0, help="of which started (default 0)")
    p.add_argument("--runs", type=int, default=15, help="measured calls per contender (default 15)")
    dockerd.add_option(p)
    args = p.parse_args(argv)
    if args.count < 1 or not 0 <= args.running <= args.count or args.runs < 1:
        p.error("--count and --runs must be >= 1 and --running between 0 and --count")
    run(args.count, args.running, args.runs, args.dockerd)


if __name__ == "__main__":
    main()
