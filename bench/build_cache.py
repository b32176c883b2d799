"""`docker build` of a 10-step Dockerfile: cold build and no-change rebuild, pydockd against dockerd.

Both use the classic builder (DOCKER_BUILDKIT=0) through the real docker CLI.
"Cold" is `--no-cache` (every RUN executes, every COPY writes a layer);
"rebuild" repeats the build with nothing changed, so every step must be a
cache hit. Absolute times depend on the machine, so the results that matter
are ratios measured side by side, interleaved: rebuild/cold for pydockd and
pydockd/dockerd for both kinds, against a private dockerd (bench/dockerd.py;
`--no-dockerd` leaves it out). The target is a no-change rebuild faster than
dockerd's.

    python3 bench/build_cache.py [--runs 7] [--warmup 1] [--no-dockerd]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Callable
from contextlib import ExitStack

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dockerd
from common import DOCKER, measure, scratch, timed

DOCKERFILE = """\
FROM {base}
ENV APP=/app MODE=bench
WORKDIR /app
COPY config.txt ./
RUN mkdir -p data && echo built > data/built.txt
RUN cat config.txt > data/config.copy && sleep 0.2
COPY src/ ./src/
ARG VERSION=1
LABEL bench.version=$VERSION
CMD ["cat", "/app/data/built.txt"]
"""
TAG = "pydock-bench/build-cache:latest"


def make_context(root: str, who: str) -> str:
    ctx = os.path.join(root, f"ctx-{who}")
    os.makedirs(os.path.join(ctx, "src"))
    files = {"Dockerfile": DOCKERFILE.format(base="busybox:latest"), "config.txt": "key=value\n" * 100}
    files.update({f"src/file{i}.txt": f"file {i}\n" * 50 for i in range(20)})
    for name, text in files.items():
        with open(os.path.join(ctx, name), "w") as f:
            f.write(text)
    return ctx


def build_contender(env: dict[str, str], ctx: str, no_cache: bool) -> Callable[[], float]:
    argv = [DOCKER, "build", "-q", "-t", TAG, *(["--no-cache"] if no_cache else []), ctx]
    build_env = {**env, "DOCKER_BUILDKIT": "0"}
    return lambda: timed(argv, build_env)


def report(samples: dict[str, list[float]]) -> None:
    medians = {name: statistics.median(values) for name, values in samples.items()}
    for name, med in medians.items():
        print(f"{name:16s} median {med * 1000:8.1f} ms  over {len(samples[name])} runs")
    print(f"pydockd rebuild/cold ratio: {medians['pydockd-rebuild'] / medians['pydockd-cold']:.3f}")
    if "dockerd-cold" in medians:
        for kind in ("cold", "rebuild"):
            print(f"pydockd/dockerd {kind} ratio: {medians[f'pydockd-{kind}'] / medians[f'dockerd-{kind}']:.2f}x")
        verdict = "met" if medians["pydockd-rebuild"] < medians["dockerd-rebuild"] else "NOT met"
        print(f"target (no-change rebuild faster than dockerd): {verdict}")
    else:
        print("dockerd left out (--no-dockerd): pydockd/dockerd ratios not measured")


def run(runs: int, warmup: int, with_dockerd: bool) -> None:
    with ExitStack() as stack:
        root, rootfs_tar, config_dir = scratch(stack, "pydock-bench-build-")
        envs = dockerd.daemons(stack, root, rootfs_tar, config_dir, with_dockerd, import_args=("-c", 'CMD ["sh"]'))
        contenders = {}
        for who, env in envs.items():
            ctx = make_context(root, who)
            contenders[f"{who}-cold"] = build_contender(env, ctx, True)
            contenders[f"{who}-rebuild"] = build_contender(env, ctx, False)
        report(measure(contenders, runs, warmup))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=7, help="measured builds per contender (default 7)")
    p.add_argument("--warmup", type=int, default=1, help="unmeasured builds per contender first (default 1)")
    dockerd.add_option(p)
    args = p.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        p.error("--runs must be >= 1 and --warmup >= 0")
    run(args.runs, args.warmup, args.dockerd)


if __name__ == "__main__":
    main()
