"""Every benchmark runs end to end, in a quick mode, and cleans up after itself.

Timings depend on the machine, so nothing here asserts on them: only that
each benchmark completes, reports its numbers, and leaves no daemon, mount,
bridge, cgroup or temporary directory behind. The latency benchmark runs with
its private dockerd (bench/dockerd.py), the others without it (`--no-dockerd`)
to stay quick.
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _bench_leftovers() -> set[str]:
    """Scratch roots, mounts, the private dockerd's bridges, cgroups, trust key and processes."""
    with open("/proc/self/mountinfo") as f:
        mounts = {line.split()[4] for line in f if "/pydock-bench-" in line.split()[4]}
    processes = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "/pydock-bench-" in cmdline:
            processes.add(cmdline)
    return (set(glob.glob("/tmp/pydock-bench-*")) | mounts | processes | set(glob.glob("/sys/class/net/pdbench*"))
            | set(glob.glob("/sys/fs/cgroup/*/pydock-bench-*")) | set(glob.glob("/etc/docker/key.json")))


def _run(script: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, os.path.join(REPO, "bench", script), *args],
                          check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_run_latency_reports_ratios_against_private_dockerd() -> None:
    """With the private dockerd: its rows and the pydockd/dockerd ratios, and nothing of it left after."""
    before = _bench_leftovers()
    out = _run("run_latency.py", "--runs", "3", "--warmup", "1")
    assert re.search(r"^pydockd/runc ratio: \d+\.\d+x \(target <= 2\.0x\)$", out, re.MULTILINE), out
    assert re.search(r"^pd-none/runc ratio: \d+\.\d+x \(target <= 1\.5x\)$", out, re.MULTILINE), out
    assert re.search(r"^runc +median .* over 3 runs$", out, re.MULTILINE), out
    assert re.search(r"^dk-none +median .* over 3 runs$", out, re.MULTILINE), out
    assert re.search(r"^pydockd/dockerd ratio: \d+\.\d+x$", out, re.MULTILINE), out
    assert re.search(r"^pd-none/dk-none ratio: \d+\.\d+x$", out, re.MULTILINE), out
    assert _bench_leftovers() <= before


def test_concurrent_runs_reports_rates() -> None:
    before = _bench_leftovers()
    out = _run("concurrent_runs.py", "--concurrency", "3", "--rounds", "1", "--warmup", "0", "--no-dockerd")
    assert re.search(r"^pydockd +3 concurrent runs +wall median +\d+\.\d+ s +p50 per run +\d+\.\d ms +"
                     r"\d+\.\d runs/s +over 1 rounds$", out, re.MULTILINE), out
    assert re.search(r"^pydockd/runc rate ratio: \d+\.\d+x$", out, re.MULTILINE), out
    assert "dockerd " not in out
    assert _bench_leftovers() <= before


def test_build_cache_reports_ratio() -> None:
    before = _bench_leftovers()
    out = _run("build_cache.py", "--runs", "1", "--warmup", "0", "--no-dockerd")
    assert re.search(r"^pydockd rebuild/cold ratio: \d+\.\d+$", out, re.MULTILINE), out
    assert _bench_leftovers() <= before


def test_density_reports_per_container_cost() -> None:
    before = _bench_leftovers()
    proc = subprocess.run([sys.executable, os.path.join(REPO, "bench", "density.py"), "--count", "3", "--no-dockerd"],
                          check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    match = re.search(r"^pydockd +3 containers +(\d+\.\d+) s/container +daemon RSS (\d+\.\d) MiB +"
                      r"monitors RSS (\d+\.\d) MiB \(3 monitors\)$", proc.stdout, re.MULTILINE)
    assert match, proc.stdout
    assert float(match[1]) > 0 and float(match[2]) > 0 and float(match[3]) > 0
    assert _bench_leftovers() <= before


def test_logs_reports_read_speed() -> None:
    before = _bench_leftovers()
    proc = subprocess.run([sys.executable, os.path.join(REPO, "bench", "logs.py"), "--size-mb", "5",
                           "--no-dockerd"],
                          check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    match = re.search(r"^pydockd +(\d+) MB +(\d+) lines +full read +\d+\.\d+ s \( *(\d+) lines/s\) +"
                      r"--tail 5 +\d+\.\d ms +--since \(last 100\) +\d+\.\d ms$", proc.stdout, re.MULTILINE)
    assert match, proc.stdout
    assert int(match[1]) == 5 and int(match[2]) > 10_000 and int(match[3]) > 0
    assert re.search(r"^dockerd left out \(--no-dockerd\)$", proc.stdout, re.MULTILINE), proc.stdout
    assert _bench_leftovers() <= before


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo (the baseline) is not installed")
def test_pull_throughput_reports_ratio() -> None:
    before = _bench_leftovers()
    bench = os.path.join(REPO, "bench", "pull_throughput.py")
    proc = subprocess.run([sys.executable, bench, "--size-mb", "10", "--runs", "1", "--no-dockerd"],
                          check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^pydock/skopeo ratio: \d+\.\d+x$", proc.stdout, re.MULTILINE), proc.stdout
    assert re.search(r"^pydock +median +\d+\.\d MB/s +over 1 runs", proc.stdout, re.MULTILINE), proc.stdout
    assert _bench_leftovers() <= before


def test_widget_overhead_reports_ratio() -> None:
    before = _bench_leftovers()
    proc = subprocess.run([sys.executable, os.path.join(REPO, "bench", "widget_overhead.py"), "--runs", "2",
                           "--block", "1"], check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^with-widget/without ratio: \d+\.\d+x \(aim: <= 1\.2x\)$", proc.stdout, re.MULTILINE), \
        proc.stdout
    assert _bench_leftovers() <= before
