"""The per-container monitor, compiled (monitor.c, the default) and Python (shim.py), as users see it.

Everything goes through the real docker CLI against real daemons: the session
daemon runs the compiled monitor, and a second daemon of this module's own runs
`--monitor python`, so the checks that matter for both (output and exit codes,
exec, logs with rotation and compression, one time per log line, daemon
restarts) run against each. The compiled monitor's own promises (it is what
runs, it stays small, it survives bad clients on its socket) are checked
against the session daemon.
"""
from __future__ import annotations

import fcntl
import glob
import gzip
import json
import os
import pty
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import DOCKER, Daemon, _cleanup_root, busybox_daemon, new_daemon, new_name, removed_after
from test_oci_runtimes import _sealed_copies

from engine.config import EngineConfig
from engine.container import logs
from engine.linux.proc import running as process_running
from engine.runtime import monitorbuild, runc

KIB = 1024


@pytest.fixture(scope="module")
def py_daemon(busybox_tar: str) -> Iterator[Daemon]:
    """A daemon running the Python monitor, with busybox imported."""
    with busybox_daemon(busybox_tar, "pydock-pymon-", ("--monitor", "python")) as d:
        yield d


@pytest.fixture(params=["c", "python"])
def any_daemon(request: pytest.FixtureRequest, daemon: Daemon, busybox: str) -> Iterator[Daemon]:
    """The session daemon (compiled monitor) or the module's Python-monitor daemon; containers made through
    `any_names` are removed afterwards."""
    d = daemon if request.param == "c" else request.getfixturevalue("py_daemon")
    yield d


@pytest.fixture
def any_names(any_daemon: Daemon) -> Iterator[list[str]]:
    with removed_after(any_daemon) as created:
        yield created


def _inspect(d: Daemon, name: str) -> dict[str, Any]:
    return json.loads(d.docker("inspect", name, check=True).stdout)[0]


def _monitor_pid(d: Daemon, name: str) -> int:
    """The PID of the container's monitor, from the shim.pid it writes into its state directory."""
    cid = _inspect(d, name)["Id"]
    with open(os.path.join(d.exec_root, "s", cid[:16], "shim.pid")) as f:
        return int(f.read())


def _smaps(pid: int) -> dict[str, int]:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return {k.rstrip(":"): int(v) * KIB for k, v, *_ in (line.split() for line in f) if k.endswith(":")
                and v.isdigit()}


# ---- which monitor runs ---------------------------------------------------------

def test_default_monitor_is_the_compiled_one_and_small(daemon: Daemon, busybox: str, names: list[str]) -> None:
    n = new_name(names)
    daemon.docker("run", "-d", "--name", n, "busybox", "sleep", "300", check=True)
    pid = _monitor_pid(daemon, n)
    exe = os.readlink(f"/proc/{pid}/exe")
    assert os.path.dirname(exe) == os.path.join(daemon.data_root, "monitor"), exe
    assert os.path.basename(exe) == monitorbuild.binary_name()
    mem = _smaps(pid)
    assert mem["Pss"] < 1024 * KIB, mem  # issue 17: <= 3 MiB a container, monitor and daemon share together
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    assert int(fields[3]) == int(fields[2]) == pid, "its own session: stopping the daemon leaves it be"


def test_running_containers_add_no_daemon_threads(daemon: Daemon, busybox: str, names: list[str]) -> None:
    """Issue 17: the daemon stays flat as containers grow; one watcher waits for every container's exit."""
    assert daemon.proc is not None
    pid = daemon.proc.pid

    def threads() -> int:
        return len(os.listdir(f"/proc/{pid}/task"))

    def run(count: int) -> list[str]:
        batch = [new_name(names) for _ in range(count)]
        for n in batch:
            daemon.docker("run", "-d", "--name", n, "busybox", "sleep", "300", check=True)
        return batch

    first = run(10)  # the daemon's bounded pools (API executor, exit appliers) have grown by now
    before = threads()
    batch = first + run(20)
    assert threads() < before + 5
    daemon.docker("rm", "-f", *batch, check=True)
    assert daemon.docker("ps", "-aq", "--filter", f"name={batch[0]}").stdout.strip() == ""


def test_python_daemon_runs_the_python_monitor(py_daemon: Daemon) -> None:
    n = "pymon-" + os.urandom(4).hex()
    py_daemon.docker("run", "-d", "--name", n, "busybox", "sleep", "300", check=True)
    try:
        with open(f"/proc/{_monitor_pid(py_daemon, n)}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        assert any(a.endswith(b"shim.py") for a in argv), argv
    finally:
        py_daemon.docker("rm", "-f", n)


def test_no_compiler_falls_back_to_the_python_monitor(tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no cc, gcc or clang there
    with pytest.raises(monitorbuild.MonitorBuildError, match="no C compiler"):
        monitorbuild.build(str(tmp_path / "cache"))
    rt = runc.Runtime(EngineConfig(data_root=str(tmp_path / "data"), exec_root=str(tmp_path / "exec")))
    try:
        assert rt.monitor_kind == "python"
    finally:
        rt.close()
    assert "using the Python one: no C compiler" in caplog.text


def test_build_is_cached_by_source_hash(tmp_path: Any) -> None:
    cache = str(tmp_path / "cache")
    os.makedirs(cache)
    with open(os.path.join(cache, "monitor-0123456789abcdef"), "w") as f:
        f.write("an older monitor")
    path = monitorbuild.build(cache)
    assert os.listdir(cache) == [monitorbuild.binary_name()]  # the older build removed
    mtime = os.stat(path).st_mtime_ns
    assert monitorbuild.build(cache) == path and os.stat(path).st_mtime_ns == mtime  # not rebuilt


def _wait_for(cond: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := cond()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return value


def _read_pid(path: str) -> int:
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError):
        return 0


@pytest.mark.parametrize("spare", [True, False], ids=["spare", "fresh"])
def test_compiled_monitor_is_handed_its_container_and_runtime_copy(tmp_path: Any, spare: bool) -> None:
    """A compiled monitor waits started ahead of need (argv "-"): a launch hands it the state directory and
    the runtime's sealed copy over its stdin; with none waiting (another start took it), a launch starts one
    for its container (argv the state directory). Either way the monitor holds the sealed copy and gives up
    once the daemon lets its launch go unstarted."""
    cfg = EngineConfig(data_root=str(tmp_path / "data"), exec_root=str(tmp_path / "run"))
    rt = runc.Runtime(cfg)
    cid = "c0ffee" * 10 + "abcd"
    try:
        assert rt.monitor_kind == "c"
        waiting = _wait_for(lambda: rt._spare)  # started once the monitor was built
        assert waiting is not None and waiting.compiled
        if not spare:
            with rt._spare_lock:
                rt._spare = None
            waiting.discard()
        rt.launch(cid, str(tmp_path), tty=False, stdin=False, log={}, console_size=None, cgroup_path="",
                  runtime=cfg.chosen_runtime)
        assert rt._spare is not waiting
        if not spare:  # none taken, so none forked the next: it comes once a start's runtime call returns
            assert rt._spare is None
        state_dir = rt.state_dir(cid)
        pid = _wait_for(lambda: _read_pid(os.path.join(state_dir, "shim.pid")))  # it readies itself meanwhile
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        assert argv[1] == (b"-" if spare else state_dir.encode()), argv
        with open(cfg.runtimes[cfg.chosen_runtime], "rb") as f:
            binary = f.read()
        assert [content for _, _, content in _sealed_copies(pid)] == [binary]
        rt.cleanup(cid)  # lets the launch go: the monitor gives up, and cleanup waits for it
        assert not process_running(pid) and not os.path.exists(state_dir)
    finally:
        rt.close()


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def test_a_spare_forks_the_next_as_it_takes_its_container(tmp_path: Any) -> None:
    """The daemon starts no process for the next start: the spare that takes a container forks the next
    spare, orphaned like every monitor (not its child), which takes the next container with a runtime copy
    of its own (it closed the one it inherited)."""
    cfg = EngineConfig(data_root=str(tmp_path / "data"), exec_root=str(tmp_path / "run"))
    rt = runc.Runtime(cfg)
    cids = [c * 64 for c in "ab"]
    try:
        first = _wait_for(lambda: rt._spare)
        assert first is not None and first.proc is not None
        pids = []
        for cid in cids:
            rt.launch(cid, str(tmp_path), tty=False, stdin=False, log={}, console_size=None, cgroup_path="",
                      runtime=cfg.chosen_runtime)
            pids.append(_wait_for(lambda: _read_pid(os.path.join(rt.state_dir(cid), "shim.pid"))))  # noqa: B023
            successor = rt._spare
            assert successor is not None and successor.proc is None and successor.alive()
        assert pids[0] != pids[1] and _ppid(pids[1]) != pids[0]
        with open(f"/proc/{pids[1]}/cmdline", "rb") as f:
            assert f.read().split(b"\0")[1] == b"-"
        with open(cfg.runtimes[cfg.chosen_runtime], "rb") as f:
            binary = f.read()
        assert [content for _, _, content in _sealed_copies(pids[1])] == [binary]
        for cid in cids:
            rt.cleanup(cid)
            assert not os.path.exists(rt.state_dir(cid))
        assert not any(process_running(pid) for pid in pids)
    finally:
        rt.close()


def test_monitor_option_and_daemon_json(tmp_path: Any) -> None:
    from engine.pydockd import parse_args
    config = tmp_path / "daemon.json"
    config.write_text('{"monitor": "python"}')
    assert parse_args(["--config-file", str(config)]).monitor == "python"
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    assert parse_args(["--config-file", str(empty), "--monitor", "python"]).monitor == "python"
    assert parse_args(["--config-file", str(empty)]).monitor == "c"
    config.write_text('{"monitor": "java"}')
    with pytest.raises(SystemExit, match="invalid monitor 'java': choose from c, python"):
        parse_args(["--config-file", str(config)])
    proc = subprocess.run(["python3", "-m", "engine.pydockd", "--monitor", "java"], capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), timeout=60, check=False)
    assert proc.returncode == 2 and "invalid choice: 'java'" in proc.stderr


# ---- what users see, with either monitor -------------------------------------------

def test_run_streams_and_exit_code(any_daemon: Daemon, any_names: list[str]) -> None:
    n = new_name(any_names)
    proc = any_daemon.docker("run", "--name", n, "busybox", "sh", "-c",
                             "echo out; echo err >&2; printf 'no newline'; exit 7")
    assert (proc.returncode, proc.stdout, proc.stderr) == (7, "out\nno newline", "err\n")
    assert _inspect(any_daemon, n)["State"]["ExitCode"] == 7
    out = any_daemon.docker("logs", n, check=True)
    assert (out.stdout, out.stderr) == ("out\nno newline", "err\n")  # the partial line flushed at exit


def test_stdin_reaches_the_process(any_daemon: Daemon, any_names: list[str]) -> None:
    n = new_name(any_names)
    data = "".join(f"line {i}\n" for i in range(2000))
    proc = any_daemon.docker("run", "-i", "--name", n, "busybox", "sh", "-c", "cat; echo done", input=data)
    assert proc.returncode == 0 and proc.stdout == data + "done\n", proc.stderr


@pytest.mark.parametrize("tty", [False, True])
def test_input_sent_before_start_reaches_the_process(any_daemon: Daemon, any_names: list[str], tty: bool) -> None:
    """A client attached before `start` may send input (and, without a TTY, its EOF) before the process
    exists: the monitor keeps it for the process."""
    import docker
    api = docker.APIClient(base_url=any_daemon.url, timeout=60)
    n = new_name(any_names)
    cmd = ["sh", "-c", "read line; echo got:$line"] if tty else ["cat"]
    cid = api.create_container("busybox", cmd, stdin_open=True, tty=tty, name=n)["Id"]
    sock = api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
    raw = sock._sock
    raw.sendall(b"early\n")
    if not tty:
        raw.shutdown(socket.SHUT_WR)  # StdinOnce: the process sees EOF after the input
    time.sleep(0.2)
    api.start(cid)
    raw.settimeout(30)
    out = b""
    while chunk := raw.recv(65536):
        out += chunk
    raw.close()
    api.close()
    assert (b"got:early" if tty else b"early\n") in out, out
    assert _inspect(any_daemon, n)["State"]["ExitCode"] == 0


def test_each_line_has_its_own_time(any_daemon: Daemon, any_names: list[str]) -> None:
    """Lines the monitor reads in one chunk still get a time each, strictly increasing across streams."""
    n = new_name(any_names)
    any_daemon.docker("run", "--name", n, "busybox", "sh", "-c",
                      "printf 'a\\nb\\nc\\nd\\ne\\n'; printf 'x\\ny\\n' >&2; printf 'f\\ng\\n'", check=True)
    path = _inspect(any_daemon, n)["LogPath"]
    with open(path, "rb") as f:
        entries = [json.loads(line) for line in f]
    assert sorted(e["log"] for e in entries) == [f"{c}\n" for c in "abcdefgxy"]
    times = [logs.time_ns(e["time"].encode()) for e in entries]
    assert times == sorted(times) and len(set(times)) == len(times), [e["time"] for e in entries]
    stamped = any_daemon.docker("logs", "-t", n, check=True).stdout.split()
    assert len(set(stamped[0::2])) == 7  # stdout's lines, each with a different time


def test_log_lines_encode_like_dockerd(any_daemon: Daemon, any_names: list[str]) -> None:
    """Escapes and invalid UTF-8 (U+FFFD for each bad sequence) as dockerd's json-file driver writes them,
    and lines longer than 16 KiB split, ended by a newline or not."""
    n = new_name(any_names)
    any_daemon.docker("run", "-d", "--name", n, "busybox", "sh", "-c",
                      "printf 'tab\\there \"q\" back\\\\ \\001 \\303\\251 bad\\377\\300 cut\\342\\202\\n'; "
                      "head -c 40000 /dev/zero | tr '\\0' z; echo; head -c 40000 /dev/zero | tr '\\0' y",
                      check=True)
    any_daemon.docker("wait", n, check=True)  # its output is no text the CLI's caller could decode
    with open(_inspect(any_daemon, n)["LogPath"], "rb") as f:
        raw = f.read().splitlines()
    assert raw[0].startswith('{"log":"tab\\there \\"q\\" back\\\\ \\u0001 é bad\ufffd\ufffd cut\ufffd\\n",'
                             '"stream":"stdout","time":"'.encode())
    pieces = [json.loads(line)["log"] for line in raw[1:]]
    assert [(len(p), p[0], p.endswith("\n")) for p in pieces] == [
        (16384, "z", False), (16384, "z", False), (40001 - 2 * 16384, "z", True),
        (16384, "y", False), (16384, "y", False), (40000 - 2 * 16384, "y", False)]


def test_exec_streams_stdin_and_exit_code(any_daemon: Daemon, any_names: list[str]) -> None:
    n = new_name(any_names)
    any_daemon.docker("run", "-d", "--name", n, "busybox", "sleep", "300", check=True)
    state_dirs = sorted(os.listdir(os.path.join(any_daemon.exec_root, "s")))
    proc = any_daemon.docker("exec", n, "sh", "-c", "echo in-exec; echo exec-err >&2; exit 5")
    assert (proc.returncode, proc.stdout, proc.stderr) == (5, "in-exec\n", "exec-err\n")
    proc = any_daemon.docker("exec", "-i", n, "cat", input="to exec\n")
    assert (proc.returncode, proc.stdout) == (0, "to exec\n")
    assert any_daemon.docker("logs", n, check=True).stdout == ""  # exec output is not logged
    assert sorted(os.listdir(os.path.join(any_daemon.exec_root, "s"))) == state_dirs  # execs' state removed


def test_rotation_and_compression(any_daemon: Daemon, any_names: list[str]) -> None:
    n = new_name(any_names)
    any_daemon.docker("run", "--name", n, "--log-opt", "max-size=4k", "--log-opt", "max-file=3", "--log-opt",
                      "compress=true", "busybox", "sh", "-c",
                      "i=0; while [ $i -lt 1500 ]; do echo r-$i; i=$((i+1)); done", check=True, timeout=120)
    path = _inspect(any_daemon, n)["LogPath"]
    assert sorted(os.path.basename(p)[len(os.path.basename(path)):] for p in glob.glob(path + "*")) \
        == ["", ".1.gz", ".2.gz"]
    for rotated in (path + ".1.gz", path + ".2.gz"):
        with gzip.open(rotated) as f:
            size = len(f.read())
        assert 4000 <= size <= 4000 + 100, size  # the check is before each line: over by at most one
    out = any_daemon.docker("logs", n, check=True).stdout.splitlines()
    assert out[-1] == "r-1499" and out == [f"r-{i}" for i in range(int(out[0][2:]), 1500)]


def test_kill_and_wait_exit_codes(any_daemon: Daemon, any_names: list[str]) -> None:
    n, m = new_name(any_names), new_name(any_names)
    any_daemon.docker("run", "-d", "--name", n, "busybox", "sh", "-c",
                      "trap 'exit 42' TERM; echo ready; while :; do sleep 0.1; done", check=True)
    any_daemon.docker("run", "-d", "--name", m, "busybox", "sleep", "300", check=True)
    deadline = time.monotonic() + 10
    while "ready" not in any_daemon.docker("logs", n).stdout and time.monotonic() < deadline:
        time.sleep(0.05)
    waiter = subprocess.Popen([DOCKER, "wait", n], stdout=subprocess.PIPE, text=True, env=any_daemon.env)
    time.sleep(0.3)  # the wait is open before the exit
    any_daemon.docker("kill", "-s", "TERM", n, check=True)
    assert waiter.communicate(timeout=30)[0].strip() == "42"
    any_daemon.docker("kill", m, check=True)
    assert any_daemon.docker("wait", m, check=True).stdout.strip() == "137"
    state = _inspect(any_daemon, m)["State"]
    assert (state["Status"], state["ExitCode"], state["OOMKilled"]) == ("exited", 137, False)
    assert not any_daemon.runtime_states(_inspect(any_daemon, m)["Id"])


def test_container_outlives_daemon_restart(any_daemon: Daemon, any_names: list[str]) -> None:
    """Stopping the daemon leaves the monitor and its container running; the restarted daemon reconnects
    to it (logs, attach, kill, wait), and output written meanwhile is in the log."""
    n = new_name(any_names)
    any_daemon.docker("run", "-d", "-i", "--name", n, "busybox", "sh", "-c",
                      "i=0; while [ $i -lt 30 ]; do echo tick-$i; i=$((i+1)); sleep 0.1; done; "
                      "read line; echo got-$line; exit 3", check=True)
    monitor = _monitor_pid(any_daemon, n)
    any_daemon.stop()
    try:
        time.sleep(1)
        assert process_running(monitor)
    finally:
        any_daemon.start()
    assert _inspect(any_daemon, n)["State"]["Running"]
    attach = subprocess.Popen([DOCKER, "attach", n], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env=any_daemon.env)
    time.sleep(4)  # the ticks are over: the process waits for its line
    out, _ = attach.communicate("hello\n", timeout=60)
    assert out.endswith("got-hello\n"), out
    assert any_daemon.docker("wait", n, check=True).stdout.strip() == "3"
    logged = any_daemon.docker("logs", n, check=True).stdout.splitlines()
    assert logged == [f"tick-{i}" for i in range(30)] + ["got-hello"]
    deadline = time.monotonic() + 10
    while process_running(monitor) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_running(monitor)


# ---- TTY --------------------------------------------------------------------------------

def _set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _read_until(fd: int, needle: bytes, timeout: float = 30) -> bytes:
    got = b""
    deadline = time.monotonic() + timeout
    while needle not in got and time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                got += os.read(fd, 4096)
            except OSError:
                break
    return got


def test_tty_size_and_resize(any_daemon: Daemon, any_names: list[str]) -> None:
    """`docker run -it` from a terminal: the container's terminal has the client's size, and follows it when
    the client's terminal is resized (SIGWINCH makes the CLI call resize)."""
    n = new_name(any_names)
    leader, follower = pty.openpty()
    _set_size(follower, 33, 101)
    proc = subprocess.Popen([DOCKER, "run", "-it", "--name", n, "busybox", "sh"], stdin=follower, stdout=follower,
                            stderr=follower, env=any_daemon.env, start_new_session=True)
    os.close(follower)
    try:
        os.write(leader, b"stty size; echo size-$((6*7))\n")
        assert b"33 101" in _read_until(leader, b"size-42")
        _set_size(leader, 50, 120)
        seen = b""
        for attempt in range(20):  # the CLI watches for SIGWINCH only some time after its output flows
            proc.send_signal(signal.SIGWINCH)
            os.write(leader, b"stty size; echo size-$((%d*8))\n" % (attempt + 100))
            seen = _read_until(leader, b"size-%d" % ((attempt + 100) * 8))
            if b"50 120" in seen:
                break
            time.sleep(0.25)
        assert b"50 120" in seen, seen
        os.write(leader, b"exit 9\n")
        assert proc.wait(timeout=30) == 9
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(leader)


def test_exec_tty(any_daemon: Daemon, any_names: list[str]) -> None:
    """`docker exec -it` gets a terminal of the client's size. Checked a moment after the process starts: crun
    (1.8) sizes an exec's terminal only as its process may already run (runc sizes it first), and the
    monitor's own resize, made as soon as the runtime hands it the terminal, mostly but not always wins that
    race (the Python monitor lost it about one exec in ten)."""
    n = new_name(any_names)
    any_daemon.docker("run", "-d", "--name", n, "busybox", "sleep", "300", check=True)
    leader, follower = pty.openpty()
    _set_size(follower, 21, 77)
    proc = subprocess.Popen([DOCKER, "exec", "-it", n, "sh", "-c", "sleep 0.2; stty size; tty; exit 4"], stdin=follower,
                            stdout=follower, stderr=follower, env=any_daemon.env, start_new_session=True)
    os.close(follower)
    try:
        out = _read_until(leader, b"/dev/pts/")
        assert b"21 77" in out, out
        assert proc.wait(timeout=30) == 4
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(leader)


# ---- memory limits --------------------------------------------------------------------

def _memory_cgroup() -> bool:
    if os.path.isdir("/sys/fs/cgroup/memory"):
        return True
    try:
        with open("/sys/fs/cgroup/cgroup.controllers") as f:
            return "memory" in f.read().split()
    except OSError:
        return False


@pytest.mark.skipif(not _memory_cgroup(), reason="no memory cgroup controller on this machine")
def test_oom_killed(daemon: Daemon, busybox: str, names: list[str]) -> None:
    n = new_name(names)
    proc = daemon.docker("run", "--name", n, "-m", "16m", "--memory-swap", "16m", "busybox", "tail", "/dev/zero",
                         timeout=120)
    assert proc.returncode == 137, proc.stderr
    state = _inspect(daemon, n)["State"]
    assert (state["ExitCode"], state["OOMKilled"]) == (137, True)


# ---- a daemon that died --------------------------------------------------------------

def test_created_container_is_not_left_behind_by_a_dead_daemon(busybox_tar: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon dies after handing the compiled monitor its container, before reading its ready line: the
    monitor finds nobody to report to, kills the created container and exits instead of holding it."""
    d = new_daemon("pydock-monstart-")
    d.start()
    try:
        d.docker("import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:latest", check=True)
        d.stop()
        with monkeypatch.context() as m:
            m.setenv("PYDOCK_CRASH_AT", "handed-over")
            d.start()
        d.docker("run", "-d", "--name", "orphan", "busybox", "sleep", "300")
        assert d.proc is not None
        d.proc.wait(timeout=30)
        d.proc = None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (d.runtime_states() or _monitors_of(d)):
            time.sleep(0.1)
        assert d.runtime_states() == []
        assert _monitors_of(d) == []
        d.start()
        assert d.docker("start", "orphan").returncode == 0
        assert _inspect(d, "orphan")["State"]["Running"]
    finally:
        if d.proc is None:
            d.start()
        _cleanup_root(d)


def _monitors_of(d: Daemon) -> list[int]:
    """Live compiled monitors whose binary is in this daemon's data root."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            continue
        if exe.startswith(os.path.join(d.data_root, "monitor") + "/") and process_running(int(pid)):
            found.append(int(pid))
    return found


# ---- bad clients on the monitor's socket -----------------------------------------------

def _ask(sock_path: str, data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(sock_path)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def test_monitor_survives_bad_requests(any_daemon: Daemon, any_names: list[str]) -> None:
    n = new_name(any_names)
    any_daemon.docker("run", "-d", "--name", n, "busybox", "sleep", "300", check=True)
    cid = _inspect(any_daemon, n)["Id"]
    sock = os.path.join(any_daemon.exec_root, "s", cid[:16], "shim.sock")
    assert _ask(sock, b"not json\n") == b""
    assert _ask(sock, b"[1, 2]\n") == b""
    assert _ask(sock, b"x" * 70000) == b""  # no line end within 64 KiB
    assert json.loads(_ask(sock, b'{"op": "ping"}\n')) == {"error": "unknown op 'ping'"}
    assert "error" in json.loads(_ask(sock, b'{"op": "kill", "signal": 99999}\n'))
    assert "error" in json.loads(_ask(sock, b'{"op": "resize", "h": 70000, "w": 1}\n'))
    assert "error" in json.loads(_ask(sock, b'{"op": "resize", "h": 1e400, "w": 1}\n'))
    assert "error" in json.loads(_ask(sock, b'{"op": "kill", "signal": "KILL"}\n'))
    assert json.loads(_ask(sock, b'{"op": "resize", "h": 10, "w": 10}\n')) == {"ok": True}
    assert json.loads(_ask(sock, b'{"op": "kill", "signal": 0}\n')) == {"ok": True}
    assert _inspect(any_daemon, n)["State"]["Running"]
    any_daemon.docker("kill", n, check=True)
    assert any_daemon.docker("wait", n, check=True).stdout.strip() == "137"


_HOLDER = """
import fcntl, os, sys, time
fd = os.open(os.path.join(sys.argv[1], "shim.lock"), os.O_WRONLY | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
if sys.argv[2] == "own":
    with open(os.path.join(sys.argv[1], "shim.pid"), "w") as f:
        f.write(str(os.getpid()))
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("pid_file", ["own", "missing", "someone else's"])
def test_monitor_gone_waits_for_the_lock_holder_to_exit(tmp_path: Any, pid_file: str) -> None:
    """The daemon's wait for a monitor (runc.monitor_gone): not gone while the lock holder lives, gone once it
    exits, whether shim.pid names it (the wait sleeps on its pidfd), is missing, or names another process."""
    other = subprocess.Popen(["sleep", "60"])
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path), pid_file], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        if pid_file == "someone else's":
            (tmp_path / "shim.pid").write_text(str(other.pid))
        assert not runc.monitor_gone(str(tmp_path), 0.2)
        assert holder.stdin is not None
        holder.stdin.close()  # it exits
        assert runc.monitor_gone(str(tmp_path), 30)
    finally:
        holder.kill()
        other.kill()
        holder.wait()
        other.wait()
    assert runc.monitor_gone(str(tmp_path / "never-ran"), 0)
