"""What an open `Containers()` widget costs `docker run --rm busybox true`, with 19 other containers listed.

Every run is half a dozen container events the widget follows (one small
list request and a few in-place widget updates each). The result is the ratio
of median run times with the widget open to without, measured side by side
against one private pydockd: blocks of runs alternate between the two, so
machine noise hits both alike. The aim is at most 1.2x.

    python3 bench/widget_overhead.py [--runs 40] [--block 5]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from contextlib import ExitStack

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import (
    DOCKER,
    REPO,
    docker,
    docker_env,
    remove_all_containers,
    scratch,
    start_pydockd,
    timed,
)

sys.path.insert(0, REPO)

IDLE = 19  # containers listed meanwhile, as in the report that found the widget 10x slower


def measure(env: dict[str, str], host: str, runs: int, block: int) -> dict[str, list[float]]:
    from pydock_ext.connection import Endpoint
    from pydock_ext.widgets import Containers

    argv = [DOCKER, "run", "--rm", "busybox", "true"]
    samples: dict[str, list[float]] = {"with widget": [], "without": []}
    for i in range(0, runs, block):
        for phase in (("with widget", "without") if (i // block) % 2 == 0 else ("without", "with widget")):
            widget = Containers(Endpoint(host)) if phase == "with widget" else None
            try:
                samples[phase] += [timed(argv, env) for _ in range(block)]
            finally:
                if widget is not None:
                    widget.close()
    return samples


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=40, help="runs per side (default 40)")
    p.add_argument("--block", type=int, default=5, help="runs per alternating block (default 5)")
    args = p.parse_args(argv)
    with ExitStack() as stack:
        root, rootfs_tar, config_dir = scratch(stack, "pydock-bench-widget-")
        host = start_pydockd(root, stack, REPO)
        env = docker_env(host, config_dir)
        stack.callback(remove_all_containers, env)
        docker(env, "import", rootfs_tar, "busybox:latest")
        for i in range(IDLE):
            docker(env, "create", "--name", f"idle-{i}", "busybox", "true")
        timed([DOCKER, "run", "--rm", "busybox", "true"], env)  # warm up
        samples = measure(env, host, args.runs, args.block)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    for name, med in medians.items():
        print(f"{name:12s} median {med * 1000:8.1f} ms  over {len(samples[name])} runs")
    print(f"with-widget/without ratio: {medians['with widget'] / medians['without']:.2f}x (aim: <= 1.2x)")


if __name__ == "__main__":
    main()
