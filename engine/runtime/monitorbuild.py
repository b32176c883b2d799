"""Building the compiled per-process monitor (monitor.c) on the machine that runs it.

The daemon ships the monitor as C source and compiles it with the host's `cc`
on first use: there is no build step between `git clone`/`pip install -e`
and a working daemon, a rootless user's daemon builds its own copy, and the
binary always matches the libc it runs against. The result is cached under
the data root, named by the hash of the source and the compiler flags, so a
changed monitor.c is rebuilt and an unchanged one costs nothing after the
first start. The binary is written under a temporary name and renamed into
place, so a daemon killed mid-build, or two builds at once, never leave a
half-written monitor to run.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

MONITOR_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "monitor.c")
CFLAGS = ("-O2", "-s", "-w")
BUILD_TIMEOUT = 120.0


class MonitorBuildError(Exception):
    """No compiled monitor could be had (no compiler, a failed build, a binary that cannot run here)."""


def binary_name() -> str:
    """The cache name for this source compiled with these flags."""
    digest = hashlib.sha256()
    with open(MONITOR_SOURCE, "rb") as f:
        digest.update(f.read())
    digest.update(" ".join(CFLAGS).encode())
    return f"monitor-{digest.hexdigest()[:16]}"


def build(cache_dir: str) -> str:
    """The path of a compiled monitor for the current source, compiling it into `cache_dir` if not there yet.

    Raises MonitorBuildError with the reason when there is no compiler, the
    build fails, or the binary does not run (a noexec data root, say).
    Binaries of other versions of the source are removed: running monitors
    keep theirs open, so deleting the file does not disturb them.
    """
    try:
        path = os.path.join(cache_dir, binary_name())
    except OSError as e:
        raise MonitorBuildError(f"reading {MONITOR_SOURCE}: {e}") from e
    if not os.access(path, os.X_OK):
        _compile(path)
        _remove_others(cache_dir, os.path.basename(path))
    _check_runs(path)
    return path


def _compile(path: str) -> None:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise MonitorBuildError("no C compiler (cc, gcc or clang) on PATH")
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        proc = subprocess.run([cc, *CFLAGS, "-o", tmp, MONITOR_SOURCE], stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=BUILD_TIMEOUT, check=False)
        if proc.returncode != 0:
            raise MonitorBuildError(f"{cc} failed: {proc.stderr.decode(errors='replace').strip()[-2000:]}")
        os.replace(tmp, path)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise MonitorBuildError(f"compiling the monitor: {e}") from e
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _remove_others(cache_dir: str, keep: str) -> None:
    for name in os.listdir(cache_dir):
        if name.startswith("monitor-") and name != keep:
            try:
                os.unlink(os.path.join(cache_dir, name))
            except OSError:
                pass  # another daemon's build in progress, or not ours to remove


def _check_runs(path: str) -> None:
    """Run the monitor with no state directory, which it answers by exiting at once with 0."""
    try:
        proc = subprocess.run([path, ""], stdin=subprocess.DEVNULL, capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise MonitorBuildError(f"the compiled monitor {path} does not run: {e}") from e
    if proc.returncode != 0:
        raise MonitorBuildError(f"the compiled monitor {path} exited with {proc.returncode}")
