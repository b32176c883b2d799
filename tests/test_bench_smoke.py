"""Every benchmark runs end to end, in a quick mode, and cleans up after itself.

Timings depend on the machine, so nothing here asserts on them: only that
each benchmark completes, reports its numbers, and leaves no daemon, mount,
bridge, cgroup or temporary directory behind. The latency benchmark also runs
with its private dockerd (bench/dockerd.py) when dockerd is installed; the
others run without it (`--no-dockerd`) to stay quick.
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCKERD = shutil.which("dockerd") or "/usr/sbin/dockerd"


def _leftovers(tmp: str, pid: int) -> list[str]:
    """What a benchmark run (process `pid`, TMPDIR `tmp`) left: files, mounts or processes under its
    TMPDIR, its dockerd's bridge and cgroups, a trust key in /etc/docker."""
    found = [os.path.join(tmp, name) for name in os.listdir(tmp)]
    with open("/proc/self/mountinfo") as f:
        found += [m for m in (line.split()[4] for line in f) if m.startswith(tmp + "/")]
    for proc in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{proc}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if tmp + "/" in cmdline:
            found.append(cmdline)
    found += glob.glob(f"/sys/class/net/pdbench{pid % 100_000}") + glob.glob(f"/sys/fs/cgroup/*/pydock-bench-{pid}")
    return found


def _run(script: str, *args: str) -> str:
    """Run a benchmark with a TMPDIR of its own (so benchmarks others run meanwhile do not count) and check
    that it cleaned up after itself; its output."""
    tmp = tempfile.mkdtemp(prefix="pdsmoke-", dir="/tmp")
    key_before = os.path.exists("/etc/docker/key.json")
    try:
        proc = subprocess.Popen([sys.executable, os.path.join(REPO, "bench", script), *args], text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "TMPDIR": tmp})
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert _leftovers(tmp, proc.pid) == []
        assert os.path.exists("/etc/docker/key.json") == key_before
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


@pytest.mark.parametrize("with_dockerd", [
    pytest.param(True, marks=pytest.mark.skipif(not os.access(DOCKERD, os.X_OK),
                                                 reason="dockerd (Debian's docker.io) is not installed")),
    False])
def test_run_latency_reports_ratios(with_dockerd: bool) -> None:
    """With the private dockerd: its rows and the pydockd/dockerd ratios too, and nothing of it left after."""
    out = _run("run_latency.py", "--runs", "3", "--warmup", "1", *([] if with_dockerd else ["--no-dockerd"]))
    assert re.search(r"^pydockd/runc ratio: \d+\.\d+x \(target <= 2\.0x\)$", out, re.MULTILINE), out
    assert re.search(r"^pd-none/runc ratio: \d+\.\d+x \(target <= 1\.5x\)$", out, re.MULTILINE), out
    assert re.search(r"^pydockd/runc-sc ratio: \d+\.\d+x$", out, re.MULTILINE), out
    assert re.search(r"^runc +median .* over 3 runs$", out, re.MULTILINE), out
    default = re.search(r"^pydockd runs containers under (runc|crun) by default here$", out, re.MULTILINE)
    assert default, out
    assert re.search(rf"^floor +median +\d+\.\d ms  \(cli \+ {default[1]}-2\)$", out, re.MULTILINE), out
    if default[1] == "crun":  # runc beside it
        assert re.search(r"^floor-runc +median +\d+\.\d ms  \(cli \+ runc-2\)$", out, re.MULTILINE), out
        assert re.search(r"^pd-none/pdr-none ratio: \d+\.\d+x$", out, re.MULTILINE), out
    assert re.search(r"^floor/runc ratio: \d+\.\d+x$", out, re.MULTILINE), out
    assert bool(re.search(r"^dk-none +median .* over 3 runs$", out, re.MULTILINE)) == with_dockerd, out
    assert bool(re.search(r"^pydockd/dockerd ratio: \d+\.\d+x$", out, re.MULTILINE)) == with_dockerd, out
    assert bool(re.search(r"^pd-none/dk-none ratio: \d+\.\d+x$", out, re.MULTILINE)) == with_dockerd, out


def test_concurrent_runs_reports_rates() -> None:
    out = _run("concurrent_runs.py", "--concurrency", "3", "--rounds", "1", "--warmup", "0", "--no-dockerd")
    assert re.search(r"^pydockd +3 concurrent runs +wall median +\d+\.\d+ s +p50 per run +\d+\.\d ms +"
                     r"\d+\.\d runs/s +over 1 rounds +daemon CPU +\d+\.\d ms/run$", out, re.MULTILINE), out
    assert re.search(r"^pydockd/runc rate ratio: \d+\.\d+x$", out, re.MULTILINE), out
    assert "dockerd " not in out


def test_ps_speed_reports_times() -> None:
    out = _run("ps_speed.py", "--count", "6", "--running", "2", "--runs", "1", "--no-dockerd")
    for kind in ("ps -a", "ps", "api"):
        assert re.search(rf"^pydockd {kind} +median +\d+\.\d ms +over 1 runs +\(6 containers, 2 running\)$", out,
                         re.MULTILINE), out


def test_build_cache_reports_ratio() -> None:
    out = _run("build_cache.py", "--runs", "1", "--warmup", "0", "--no-dockerd")
    assert re.search(r"^pydockd rebuild/cold ratio: \d+\.\d+$", out, re.MULTILINE), out


def test_density_reports_per_container_cost() -> None:
    out = _run("density.py", "--count", "3", "--no-dockerd")
    for name in ("pydockd-c", "pydockd-py"):
        match = re.search(rf"^{name} +3 containers +(\d+\.\d+) s/container +daemon RSS (\d+\.\d) -> (\d+\.\d) MiB +"
                          r"monitor RSS (\d+\.\d+) PSS (\d+\.\d+) MiB/container \(3 monitors\) +"
                          r"host (\d+\.\d+) MiB/container$", out, re.MULTILINE)
        assert match, out
        assert all(float(v) > 0 for v in match.groups()), out
        assert float(match[5]) <= float(match[4]), "PSS never exceeds RSS"
    assert re.search(r"^pydockd-c host MiB/container: \d+\.\d+ \(target <= 3\.0\)$", out, re.MULTILINE), out


def test_logs_reports_read_speed() -> None:
    out = _run("logs.py", "--size-mb", "5", "--no-dockerd")
    match = re.search(r"^pydockd +(\d+) MB +(\d+) lines +full read +\d+\.\d+ s \( *(\d+) lines/s\) +"
                      r"--tail 5 +\d+\.\d ms +--since \(last 100\) +\d+\.\d ms$", out, re.MULTILINE)
    assert match, out
    assert int(match[1]) == 5 and int(match[2]) > 10_000 and int(match[3]) > 0
    assert re.search(r"^dockerd left out \(--no-dockerd\)$", out, re.MULTILINE), out


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo (the baseline) is not installed")
def test_pull_throughput_reports_ratio() -> None:
    out = _run("pull_throughput.py", "--size-mb", "10", "--runs", "1", "--no-dockerd")
    assert re.search(r"^pydock/skopeo ratio: \d+\.\d+x$", out, re.MULTILINE), out
    assert re.search(r"^pydock +median +\d+\.\d MB/s +over 1 runs", out, re.MULTILINE), out


def test_widget_overhead_reports_ratio() -> None:
    out = _run("widget_overhead.py", "--runs", "2", "--block", "1")
    assert re.search(r"^with-widget/without ratio: \d+\.\d+x \(aim: <= 1\.2x\)$", out, re.MULTILINE), out
