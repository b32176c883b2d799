"""The latency benchmark runs end to end and cleans up after itself.

Timings depend on the machine, so nothing here asserts on them: only that
the benchmark completes, reports a ratio, and leaves no daemon, mount or
temporary directory behind.
"""
from __future__ import annotations

import glob
import os
import re
import subprocess
import sys

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
