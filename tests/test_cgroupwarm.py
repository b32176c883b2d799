"""Readying the cgroup migration lock before the runtime's migration (engine/linux/cgroupwarm.py)."""
from __future__ import annotations

import time
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


def test_a_poke_migrates_the_process_into_its_own_cgroup_once_at_a_time(tmp_path: Any) -> None:
    procs = tmp_path / "cgroup.procs"
    procs.write_text("")
    warmer = MigrationWarmer(str(procs))
    with warmer._busy:  # one under way: pokes add none
        warmer.poke()
        warmer.poke()
    time.sleep(0.1)
    assert procs.read_text() == ""
    warmer.poke()
    deadline = time.monotonic() + 5
    while procs.read_text() != "0" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert procs.read_text() == "0"  # "0": the writer itself


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
