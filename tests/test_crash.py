"""SIGKILL of pydockd at any moment strands nothing.

Each test runs a private daemon (killing the shared one would break other
tests), kills it with SIGKILL inside a container start or a build, restarts
it and checks that every container's state is true and that removing every
container leaves no mount, runc state, cgroup, veth, namespace or shim.

The deterministic windows use PYDOCK_CRASH_AT (see engine/runtime/runc.py, crash_point),
which makes the daemon kill itself right after a named step of a start;
the parallel `docker run -d` loop covers whatever timing falls in between.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import Daemon, _cleanup_root, new_daemon

from engine.linux.mounts import is_mountpoint
from engine.linux.proc import running as process_running

GONE_TIMEOUT = 15.0  # seconds for exiting shims and dying namespaces to go


@pytest.fixture
def crashy(busybox_tar: str) -> Iterator[Daemon]:
    """A daemon of this test's own, with busybox imported."""
    d = new_daemon("pydock-crash-")
    d.start()
    try:
        d.docker("import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:latest", check=True)
        yield d
    finally:
        if d.proc is None:
            d.start()
        _cleanup_root(d)


def _start_crashing_at(d: Daemon, step: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Restart the daemon so that it SIGKILLs itself right after `step` of the next container start."""
    d.stop()
    with monkeypatch.context() as m:
        m.setenv("PYDOCK_CRASH_AT", step)
        d.start()


def _wait_dead(d: Daemon) -> None:
    assert d.proc is not None
    d.proc.wait(timeout=30)
    with open(d.log_path) as log:
        assert d.proc.returncode == -signal.SIGKILL, log.read()[-3000:]
    d.proc = None


def _mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f]


def _containers_mounts(d: Daemon) -> list[str]:
    """Mounts below the daemon's roots but the tmpfs that keeps its exec root in memory (engine.py)."""
    return [m for m in _mounts() if m.startswith(d.root) and m != d.exec_root]


def _shims(d: Daemon) -> list[int]:
    """PIDs of monitors working in this daemon's exec root."""
    found = []
    prefix = os.path.join(d.exec_root, "s") + "/"
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{pid}/cwd").startswith(prefix):
                found.append(int(pid))
        except OSError:
            continue
    return found


def _cgroups(cids: list[str]) -> list[str]:
    out = []
    for hierarchy in os.listdir("/sys/fs/cgroup"):
        out += [p for cid in cids for p in (f"/sys/fs/cgroup/{hierarchy}/pydock/{cid}",) if os.path.exists(p)]
    return out


def _veths(d: Daemon) -> list[str]:
    prefix = "pv" + hashlib.sha256(os.path.realpath(d.data_root).encode()).hexdigest()[:4]
    names = [line.split(":")[1].strip().split("@")[0]
             for line in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True,
                                        check=True).stdout.splitlines()]
    return [n for n in names if n.startswith(prefix)]


def _states(d: Daemon) -> dict[str, dict]:
    ids = d.docker("ps", "-aq", "--no-trunc", check=True).stdout.split()
    if not ids:
        return {}
    return {c["Id"]: c["State"] for c in json.loads(d.docker("inspect", *ids, check=True).stdout)}


def _assert_true_states(d: Daemon) -> dict[str, dict]:
    """Running containers have a live init; the others have no process, runc state or mount."""
    states = _states(d)
    mounted = _mounts()
    for cid, state in states.items():
        merged = os.path.join(d.data_root, "containers", cid, "merged")
        if state["Running"]:
            assert process_running(state["Pid"]), (cid, state)
            assert merged in mounted and d.runtime_states(cid), cid
        else:
            assert state["Status"] in ("created", "exited"), (cid, state)
            assert state["Pid"] == 0
            assert merged not in mounted, f"{cid} is {state['Status']} but its rootfs is mounted"
            assert not d.runtime_states(cid), f"{cid} is {state['Status']} but its OCI runtime knows it"
            assert not _cgroups([cid]), f"{cid} is {state['Status']} but has a cgroup"
    return states


def _assert_usable_then_clean(d: Daemon, states: dict[str, dict]) -> None:
    """Every stopped container starts, every container is removed, and nothing of them is left."""
    stopped = [cid for cid, s in states.items() if not s["Running"]]
    if stopped:
        d.docker("start", *stopped, check=True)
    for cid, state in _states(d).items():
        assert state["Running"] and process_running(state["Pid"]), (cid, state)
    if states:
        d.docker("rm", "-f", *states, check=True)
    assert d.docker("ps", "-aq").stdout.split() == []
    assert _containers_mounts(d) == []
    assert d.runtime_states() == []
    assert _cgroups(list(states)) == []
    assert os.listdir(os.path.join(d.exec_root, "netns")) == []
    # The kernel destroys a released namespace, and the veths in it, a little later.
    assert _eventually(lambda: _veths(d)) == []
    assert _eventually(lambda: _shims(d)) == []


def _eventually(probe: Callable[[], list[Any]]) -> list[Any]:
    """What `probe` still finds once it finds nothing or the timeout passed."""
    deadline = time.monotonic() + GONE_TIMEOUT
    while (found := probe()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


@pytest.mark.parametrize("step, running", [("prepared", False), ("handed-over", False), ("created", False),
                                           ("started", True)])
def test_kill_inside_a_start_leaves_a_true_state(crashy: Daemon, monkeypatch: pytest.MonkeyPatch,
                                                  step: str, running: bool) -> None:
    """Before runc create, during it, between create and start, and after start before the record says so."""
    _start_crashing_at(crashy, step, monkeypatch)
    out = crashy.docker("run", "-d", "-p", "80", "busybox", "sleep", "300")
    assert out.returncode != 0
    _wait_dead(crashy)
    crashy.start()
    states = _assert_true_states(crashy)
    assert len(states) == 1
    assert [s["Running"] for s in states.values()] == [running]
    _assert_usable_then_clean(crashy, states)


def _count(path: str) -> int:
    return len(os.listdir(path)) if os.path.isdir(path) else 0


def test_interrupted_start_of_an_auto_remove_container_removes_it(crashy: Daemon,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """As dockerd, a restarted daemon removes `--rm` containers that do not run."""
    _start_crashing_at(crashy, "created", monkeypatch)
    assert crashy.docker("run", "-d", "--rm", "busybox", "sleep", "300").returncode != 0
    _wait_dead(crashy)
    crashy.start()
    assert _states(crashy) == {}
    _assert_usable_then_clean(crashy, {})


def _stray_runtime_state(d: Daemon, tmp_path: Any) -> str:
    """A container created in `d`'s crun state root behind its back (a static busybox as its rootfs); its ID."""
    bundle = tmp_path / "stray"
    os.makedirs(bundle / "rootfs" / "bin")
    subprocess.run(["cp", "/bin/busybox", str(bundle / "rootfs" / "bin")], check=True)
    subprocess.run(["crun", "spec"], cwd=bundle, check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["args"] = ["/bin/busybox", "sleep", "300"]
    spec["process"]["terminal"] = False
    (bundle / "config.json").write_text(json.dumps(spec))
    subprocess.run(["crun", "--root", os.path.join(d.exec_root, "crun"), "create", "--bundle", str(bundle), "stray"],
                   check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return "stray"


def test_kill_after_a_removal_leaves_no_runtime_state(crashy: Daemon, monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Any) -> None:
    """A removal answers before its container's root filesystem is unmounted and before the exited
    container's monitor has deleted it in the OCI runtime (the removal's cleanup waits for that afterwards):
    a daemon killed in between leaves the mount, the container's directory and the monitor's, which the next
    daemon's boot sweep unmounts and removes, with runtime state of containers it does not hold."""
    _start_crashing_at(crashy, "removed", monkeypatch)
    crashy.docker("run", "--rm", "busybox", "true")
    _wait_dead(crashy)
    assert len(glob.glob(os.path.join(crashy.exec_root, "s", "*"))) == 1  # the monitor's directory
    [cdir] = glob.glob(os.path.join(crashy.data_root, "containers", "*"))
    assert is_mountpoint(os.path.join(cdir, "merged"))
    assert _eventually(lambda: _shims(crashy)) == []  # the monitor deleted its container and went
    stray = _stray_runtime_state(crashy, tmp_path)
    assert crashy.runtime_states(stray)
    crashy.start()
    assert glob.glob(os.path.join(crashy.exec_root, "s", "*")) == []
    assert not is_mountpoint(os.path.join(cdir, "merged")) and not os.path.exists(cdir)
    assert crashy.runtime_states() == []
    assert _states(crashy) == {}
    _assert_usable_then_clean(crashy, {})


@pytest.mark.parametrize("step", ["handed-over", "created"])
def test_shim_of_a_dead_daemon_gives_up_at_once(crashy: Daemon, monkeypatch: pytest.MonkeyPatch, step: str) -> None:
    """A daemon killed before it sent `start` (before or after the monitor's ready line) will never start
    the container: the monitor sees the daemon's end of its ready pipe close and gives up at once."""
    _start_crashing_at(crashy, step, monkeypatch)
    assert crashy.docker("run", "-d", "busybox", "sleep", "300").returncode != 0
    _wait_dead(crashy)
    [state_dir] = glob.glob(os.path.join(crashy.exec_root, "s", "*"))
    exit_file = os.path.join(state_dir, "exit.json")
    if _eventually(lambda: [] if os.path.exists(exit_file) else [state_dir]):
        with open(os.path.join(state_dir, "shim.log")) as log:
            pytest.fail("the shim kept its container:\n" + log.read())
    assert crashy.runtime_states() == []
    assert _eventually(lambda: _shims(crashy)) == []
    crashy.start()


@pytest.mark.slow
def test_kill_during_parallel_runs_leaves_true_states(crashy: Daemon) -> None:
    """10 parallel `docker run -d`, the daemon killed at a different stage of them each round.

    Rounds end when the disk shows the stage reached (container directories,
    shims, started containers) rather than after fixed delays, so they hit
    their windows however fast this machine is today.
    """
    containers, shims = os.path.join(crashy.data_root, "containers"), os.path.join(crashy.exec_root, "s")
    stages: list[Callable[[], bool]] = [lambda: _count(containers) >= 2, lambda: _count(shims) >= 3,
                                        lambda: len(crashy.runtime_states()) >= 6,
                                        lambda: len(crashy.runtime_states()) >= 9]
    for reached in stages:
        runs = [threading.Thread(target=crashy.docker, args=("run", "-d", "busybox", "sleep", "300"))
                for _ in range(10)]
        for t in runs:
            t.start()
        deadline = time.monotonic() + 30
        while not reached() and time.monotonic() < deadline:
            time.sleep(0.005)
        crashy.stop(signal.SIGKILL)
        for t in runs:
            t.join(timeout=90)
        crashy.start()
        _assert_usable_then_clean(crashy, _assert_true_states(crashy))


@pytest.mark.slow
def test_kill_during_a_build_run_leaves_no_mount(crashy: Daemon, tmp_path: str) -> None:
    """The intermediate container of an interrupted RUN goes, with its mount, at the next start."""
    ctx = os.path.join(str(tmp_path), "ctx")
    os.makedirs(ctx)
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write("FROM busybox\nRUN sleep 30\n")
    build = subprocess.Popen(["docker", "build", "-t", "crash-build", ctx], env={**crashy.env, "DOCKER_BUILDKIT": "0"},
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert build.stdout is not None
    for line in build.stdout:
        if "Running in" in line:
            break
    crashy.stop(signal.SIGKILL)
    build.wait(timeout=30)
    crashy.start()
    assert _states(crashy) == {}
    assert _containers_mounts(crashy) == []
    _assert_usable_then_clean(crashy, {})
