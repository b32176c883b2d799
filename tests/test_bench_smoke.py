"""The latency benchmark runs end to end and cleans up after itself.

Timings depend on the machine, so nothing here asserts on them: only that
the benchmark completes, reports a ratio, and leaves no daemon, mount or
temporary directory behind.
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
BENCH = os.path.join(REPO, "bench", "run_latency.py")


def _bench_leftovers() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        mounts = {line.split()[4] for line in f if "/pydock-bench-" in line.split()[4]}
    return set(glob.glob("/tmp/pydock-bench-*")) | mounts


def test_run_latency_reports_ratio() -> None:
    before = _bench_leftovers()
    proc = subprocess.run([sys.executable, BENCH, "--runs", "3", "--warmup", "1"],
                          check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^pydockd/runc ratio: \d+\.\d+x$", proc.stdout, re.MULTILINE), proc.stdout
    assert re.search(r"^runc +median .* over 3 runs$", proc.stdout, re.MULTILINE), proc.stdout
    assert _bench_leftovers() <= before


def test_density_reports_per_container_cost() -> None:
    before = _bench_leftovers()
    proc = subprocess.run([sys.executable, os.path.join(REPO, "bench", "density.py"), "--count", "3"],
                          check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    match = re.search(r"^pydockd +3 containers +(\d+\.\d+) s/container +daemon RSS (\d+\.\d) MiB +"
                      r"monitors RSS (\d+\.\d) MiB \(3 monitors\)$", proc.stdout, re.MULTILINE)
    assert match, proc.stdout
    assert float(match[1]) > 0 and float(match[2]) > 0 and float(match[3]) > 0
    assert _bench_leftovers() <= before


def test_logs_reports_read_speed() -> None:
    before = _bench_leftovers()
    proc = subprocess.run([sys.executable, os.path.join(REPO, "bench", "logs.py"), "--size-mb", "5"],
                          check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    match = re.search(r"^pydockd +(\d+) MB +(\d+) lines +full read +\d+\.\d+ s \( *(\d+) lines/s\) +"
                      r"--tail 5 +\d+\.\d ms +--since \(last 100\) +\d+\.\d ms$", proc.stdout, re.MULTILINE)
    assert match, proc.stdout
    assert int(match[1]) == 5 and int(match[2]) > 10_000 and int(match[3]) > 0
    assert re.search(r"^(dockerd not present|pydockd/dockerd full-read lines/s ratio: \d+\.\d+x)$",
                     proc.stdout, re.MULTILINE), proc.stdout
    assert _bench_leftovers() <= before


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo (the baseline) is not installed")
def test_pull_throughput_reports_ratio() -> None:
    before = _bench_leftovers()
    bench = os.path.join(REPO, "bench", "pull_throughput.py")
    proc = subprocess.run([sys.executable, bench, "--size-mb", "10", "--runs", "1"],
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
