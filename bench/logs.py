"""`docker logs` speed on a large json-file log: full-read lines/s, `--tail 5` and `--since` times.

A container is run once (so the daemon has made its log file), then its log
file is replaced by a synthetic json-file log of --size-mb, written directly
in the (compact) format dockerd's json-file driver writes (one line a microsecond, with
some lines needing JSON escapes). The docker CLI then reads it through a
private pydockd and through a private dockerd (bench/dockerd.py;
`--no-dockerd` leaves it out), taking turns read by read; side by side,
pydockd's numbers are given as ratios.

    python3 bench/logs.py [--size-mb 1024] [--repo DIR] [--no-dockerd]

--repo runs the pydockd of another checkout (e.g. to measure before a change).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from contextlib import ExitStack

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dockerd
from common import DOCKER, REPO, docker, scratch

START_NS = 1_700_000_000_000_000_000
STEP_NS = 1000


def write_log(path: str, size: int) -> tuple[int, int]:
    """A json-file log of about `size` bytes; returns its line count and the time of its last line."""
    lines = 0
    written = 0
    with open(path, "wb") as f:
        while written < size:
            block: list[str] = []
            secs, _ = divmod(START_NS + lines * STEP_NS, 1_000_000_000)
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
            for _ in range(10_000):
                frac = (START_NS + lines * STEP_NS) % 1_000_000_000
                if frac == 0 and block:
                    break  # the next line starts a new second: new prefix
                text = f"line {lines} of the benchmark log, with some text to make it typical\n" if lines % 50 \
                    else f'line {lines} with "quotes" and a \\ backslash\n'
                block.append(json.dumps({"log": text, "stream": "stdout" if lines % 10 else "stderr",
                                         "time": f"{prefix}.{frac:09d}Z"}, separators=(",", ":")))
                lines += 1
            data = ("\n".join(block) + "\n").encode()
            f.write(data)
            written += len(data)
    return lines, START_NS + (lines - 1) * STEP_NS


def timed_logs(env: dict[str, str], *args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([DOCKER, "logs", *args], check=True, env=env, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=3600)
    return time.perf_counter() - t0


def prepare(env: dict[str, str], size: int) -> tuple[str, dict[str, float]]:
    """A stopped container whose log is the synthetic one: its name, and the log's line count and size."""
    name = f"pydock-bench-logs-{os.getpid()}"
    docker(env, "run", "--name", name, "busybox:latest", "true")
    path = json.loads(docker(env, "inspect", name))[0]["LogPath"]
    lines, last_ns = write_log(path, size)
    return name, {"lines": lines, "mb": os.path.getsize(path) / 1e6, "last_ns": last_ns}


def measure(envs: dict[str, dict[str, str]], size: int) -> dict[str, dict[str, float]]:
    """Each read on every daemon in turn, so that machine noise hits all alike."""
    results: dict[str, dict[str, float]] = {}
    names: dict[str, str] = {}
    for who, env in envs.items():
        names[who], results[who] = prepare(env, size)
    for who, env in envs.items():
        results[who]["full_s"] = timed_logs(env, names[who])
        results[who]["lines_per_s"] = results[who]["lines"] / results[who]["full_s"]
    for who, env in envs.items():
        results[who]["tail_s"] = timed_logs(env, "--tail", "5", names[who])
    for who, env in envs.items():
        since = int(results[who]["last_ns"]) - 100 * STEP_NS  # the last 100 lines
        results[who]["since_s"] = timed_logs(env, "--since", f"{since // 10**9}.{since % 10**9:09d}", names[who])
    return results


def report(results: dict[str, dict[str, float]]) -> None:
    for who, r in results.items():
        print(f"{who:8s} {r['mb']:8.0f} MB {r['lines']:10.0f} lines  full read {r['full_s']:7.2f} s "
              f"({r['lines_per_s']:10.0f} lines/s)  --tail 5 {r['tail_s'] * 1000:8.1f} ms  "
              f"--since (last 100) {r['since_s'] * 1000:8.1f} ms")
    if "dockerd" not in results:
        print("dockerd left out (--no-dockerd)")
        return
    p, d = results["pydockd"], results["dockerd"]
    print(f"pydockd/dockerd full-read lines/s ratio: {p['lines_per_s'] / d['lines_per_s']:.2f}x")
    print(f"pydockd/dockerd --tail 5 time ratio: {p['tail_s'] / d['tail_s']:.2f}x")


def run(size_mb: int, repo: str, with_dockerd: bool) -> None:
    with ExitStack() as stack:
        root, rootfs_tar, config_dir = scratch(stack)
        envs = dockerd.daemons(stack, root, rootfs_tar, config_dir, with_dockerd, repo)
        report(measure(envs, size_mb * 1_000_000))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size-mb", type=int, default=1024, help="size of the log (default 1024 MB)")
    p.add_argument("--repo", default=REPO, help="checkout whose pydockd to run (default: this one)")
    dockerd.add_option(p)
    args = p.parse_args(argv)
    if args.size_mb < 1:
        p.error("--size-mb must be >= 1")
    run(args.size_mb, os.path.abspath(args.repo), args.dockerd)


if __name__ == "__main__":
    main()
