"""Readying the cgroup migration lock before the runtime's migration (engine/linux/cgroupwarm.py)."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from conftest import Daemon, new_name, removed_after

from engine.linux.cgroupwarm import MigrationWarmer, own_procs_file


def test_own_procs_file_is_a_v1_hierarchy_cgroup(tmp_path: Any) -> None:
    """Any v1 controller hierarchy the process is in (named and v2 entries are not it), where writable."""
    (tmp_path / "memory" / "pydockd").mkdir(parents=True)
    (tmp_path / "memory" / "pydockd" / "cgroup.procs").write_text("")
    cgroup = tmp_path / "cgroup"
    cgroup.write_text("2:name=systemd:/init.scope\n7:pids:/gone\n4:memory:/pydockd\n0::/init.scope\n")
    assert own_procs_file(str(cgroup), str(tmp_path)) == str(tmp_path / "memory" / "pydockd" / "cgroup.procs")
    cgroup.write_text("0::/init.scope\n")  # cgroup v2 alone: crun moves nothing with cgroup.procs there
    assert own_procs_file(str(cgroup), str(tmp_path)) is None
    assert own_procs_file(str(tmp_path / "missing"), str(tmp_path)) is None


def test_a_poke_migrates_the_process_into_its_own_cgroup(tmp_path: Any) -> None:
    procs = tmp_path / "cgroup.procs"
    procs.write_text("")
    warmer = MigrationWarmer(str(procs))
    try:
        warmer.poke()
        _until(lambda: procs.read_text() == "0")  # "0": the writer itself
    finally:
        warmer.close()


class _Held(MigrationWarmer):
    """Counts its migrations; the first waits for `release`, as a cold one waits for a grace period."""

    def __init__(self) -> None:
        super().__init__("unused")
        self.count = 0
        self.release = threading.Event()

    def _migrate(self) -> None:
        self.count += 1
        self.release.wait(5)


def test_pokes_during_a_migration_make_one_more_after_it() -> None:
    """The create's poke, then the start's during its wait: one more migration right after, which keeps
    the lock ready a grace period longer; more pokes add no more, and a closed warmer makes none."""
    warmer = _Held()
    try:
        warmer.poke()
        _until(lambda: warmer.count == 1)
        warmer.poke()
        warmer.poke()
        time.sleep(0.05)
        assert warmer.count == 1
        warmer.release.set()
        _until(lambda: warmer.count == 2)
        time.sleep(0.1)
        assert warmer.count == 2
        warmer.close()
        warmer.poke()
        time.sleep(0.05)
        assert warmer.count == 2
    finally:
        warmer.close()


def _until(done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not done() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert done()


def _cgroups(pid: int) -> str:
    with open(f"/proc/{pid}/cgroup") as f:
        return f.read()


def test_starts_and_execs_leave_the_daemon_where_it_was(daemon: Daemon, busybox: str) -> None:
    """The daemon migrates itself into its own cgroup at each start and exec: nothing changes."""
    assert daemon.proc is not None
    before = _cgroups(daemon.proc.pid)
    with removed_after(daemon) as names:
        name = new_name(names)
        daemon.docker("run", "-d", "--name", name, "busybox", "sleep", "60", check=True)
        assert daemon.docker("exec", name, "true").returncode == 0
        assert daemon.docker("run", "--rm", "busybox", "true").returncode == 0
    assert _cgroups(daemon.proc.pid) == before
