"""Container lifecycle through the real docker CLI, as a user runs it."""
from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import time
import uuid
from pathlib import Path

import pytest


def name() -> str:
    return "t" + uuid.uuid4().hex[:10]


def inspect(daemon, ref: str) -> dict:
    out = daemon.docker("inspect", ref, check=True)
    return json.loads(out.stdout)[0]


def wait_for(pred, timeout: float = 10.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def test_run_exit_code_and_streams(daemon, busybox):
    out = daemon.docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert out.returncode == 3
    assert out.stdout == "out\n"
    assert out.stderr == "err\n"


def test_run_piped_stdin(daemon, busybox):
    out = daemon.docker("run", "--rm", "-i", "busybox", "sh", "-c", "tr a-z A-Z; echo done", input="hello\nworld\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "HELLO\nWORLD\ndone\n"


def test_run_tty_interactive(daemon, busybox):
    script = "docker run --rm -it busybox sh"
    proc = subprocess.run(["script", "-qec", script, "/dev/null"], input="echo tty-$((40+2))\nexit 5\n",
                          capture_output=True, text=True, timeout=60, env=daemon.env, check=False)
    assert "tty-42" in proc.stdout
    assert proc.returncode == 5


def test_command_not_found_exit_127_and_rm_cleans(daemon, busybox):
    before = daemon.docker("ps", "-aq").stdout
    out = daemon.docker("run", "--rm", "busybox", "nosuchcmd")
    assert out.returncode == 127
    assert "executable file not found" in out.stderr
    assert daemon.docker("ps", "-aq").stdout == before


@pytest.mark.parametrize("cmd,code,message", [
    ("nosuchcmd", 127, "executable file not found"),
    ("/etc/passwd", 126, "permission denied"),
])
def test_failed_start_records_dockers_exit_code(daemon, busybox, cmd, code, message):
    """dockerd records 127 for a missing command and 126 for one that cannot run, in State and as the CLI's exit."""
    n = name()
    try:
        out = daemon.docker("run", "--name", n, "busybox", cmd)
        assert out.returncode == code and message in out.stderr, out.stderr
        state = inspect(daemon, n)["State"]
        assert (state["Status"], state["ExitCode"]) == ("created", code)
        assert message in state["Error"]
    finally:
        daemon.docker("rm", "-f", n)


def test_run_options_env_workdir_user_hostname_entrypoint(daemon, busybox):
    out = daemon.docker("run", "--rm", "-e", "FOO=bar", "-w", "/work/dir", "-u", "user", "-h", "myhost",
                        "--entrypoint", "sh", "busybox", "-c", 'echo $FOO $(pwd) $(id -u):$(id -g) $(hostname)')
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["bar", "/work/dir", "1000:1000", "myhost"]
    out = daemon.docker("run", "--rm", "-u", "1234:5678", "busybox", "id")
    assert "uid=1234 gid=5678" in out.stdout


def test_read_only_rootfs(daemon, busybox):
    out = daemon.docker("run", "--rm", "--read-only", "busybox", "touch", "/x")
    assert out.returncode == 1
    assert "Read-only file system" in out.stderr


def test_init_reaps_and_forwards(daemon, busybox):
    out = daemon.docker("run", "--rm", "--init", "busybox", "ps", "-o", "pid,comm")
    assert out.returncode == 0, out.stderr
    assert "docker-init" in out.stdout.splitlines()[1]


def test_labels_and_inspect_shape(daemon, busybox):
    n = name()
    daemon.docker("create", "--name", n, "-l", "a=b", "busybox", "true", check=True)
    data = inspect(daemon, n)
    assert data["Name"] == "/" + n
    assert data["Config"]["Labels"] == {"a": "b"}
    assert data["State"]["Status"] == "created"
    assert data["HostConfig"]["LogConfig"]["Type"] == "json-file"
    assert not any(k.startswith("_") for k in data)
    daemon.docker("rm", n, check=True)


def test_detached_logs_stop_start_restart(daemon, busybox):
    n = name()
    daemon.docker("run", "-d", "--name", n, "busybox", "sh", "-c",
                  "trap 'echo bye; exit 0' TERM; echo hello; while true; do sleep 0.1; done", check=True)
    wait_for(lambda: "hello" in daemon.docker("logs", n).stdout)
    ps = daemon.docker("ps", "--format", "{{.Names}} {{.Status}}").stdout
    assert f"{n} Up" in ps
    t = time.time()
    daemon.docker("stop", n, check=True)
    assert time.time() - t < 8, "SIGTERM handler should make stop quick"
    data = inspect(daemon, n)
    assert data["State"]["Status"] == "exited" and data["State"]["ExitCode"] == 0
    assert daemon.docker("logs", n).stdout == "hello\nbye\n"
    ts = daemon.docker("logs", "-t", "--tail", "1", n).stdout
    assert ts.endswith(" bye\n") and ts[:4].isdigit()
    daemon.docker("start", n, check=True)
    assert inspect(daemon, n)["State"]["Running"]
    daemon.docker("restart", "-t", "1", n, check=True)
    assert inspect(daemon, n)["State"]["Running"]
    daemon.docker("rm", "-f", n, check=True)


def test_stop_timeout_escalates_to_sigkill(daemon, busybox):
    n = name()
    daemon.docker("run", "-d", "--name", n, "busybox", "sleep", "100", check=True)
    t = time.time()
    daemon.docker("stop", "-t", "1", n, check=True)
    assert 0.9 < time.time() - t < 6
    assert inspect(daemon, n)["State"]["ExitCode"] == 137
    daemon.docker("rm", n, check=True)


def test_kill_signal_wait(daemon, busybox):
    n = name()
    daemon.docker("run", "-d", "--name", n, "busybox", "sh", "-c", "trap 'exit 42' USR1; while true; do sleep 0.1; done",
                  check=True)
    time.sleep(0.3)
    waiter = subprocess.Popen(["docker", "wait", n], stdout=subprocess.PIPE, text=True, env=daemon.env)
    daemon.docker("kill", "-s", "USR1", n, check=True)
    assert waiter.communicate(timeout=20)[0].strip() == "42"
    out = daemon.docker("kill", n)
    assert out.returncode == 1 and "is not running" in out.stderr
    daemon.docker("rm", n, check=True)


def test_pause_unpause(daemon, busybox):
    n = name()
    daemon.docker("run", "-d", "--name", n, "busybox", "sleep", "100", check=True)
    daemon.docker("pause", n, check=True)
    assert inspect(daemon, n)["State"]["Status"] == "paused"
    assert "(Paused)" in daemon.docker("ps", "--filter", f"name={n}", "--format", "{{.Status}}").stdout
    out = daemon.docker("rm", n)
    assert out.returncode == 1 and "container is paused" in out.stderr
    daemon.docker("unpause", n, check=True)
    assert inspect(daemon, n)["State"]["Status"] == "running"
    daemon.docker("rm", "-f", n, check=True)
    # a paused container is killed and removed by force, as dockerd does
    daemon.docker("run", "-d", "--name", n, "busybox", "sleep", "100", check=True)
    daemon.docker("pause", n, check=True)
    daemon.docker("rm", "-f", n, check=True)
    assert daemon.docker("inspect", n).returncode == 1


def test_name_conflict_rename_and_rm_running(daemon, busybox):
    a, b = name(), name()
    daemon.docker("run", "-d", "--name", a, "busybox", "sleep", "100", check=True)
    out = daemon.docker("create", "--name", a, "busybox", "true")
    assert out.returncode != 0 and "Conflict. The container name" in out.stderr and "is already in use" in out.stderr
    daemon.docker("rename", a, b, check=True)
    assert inspect(daemon, b)["Name"] == "/" + b
    out = daemon.docker("rm", b)
    assert out.returncode == 1 and "stop the container before removing or force remove" in out.stderr
    daemon.docker("rm", "-f", b, check=True)
    assert daemon.docker("inspect", b).returncode == 1


def test_ps_filters_and_format(daemon, busybox):
    a, b = name(), name()
    daemon.docker("run", "-d", "--name", a, "-l", "grp=x", "busybox", "sleep", "100", check=True)
    daemon.docker("run", "--name", b, "busybox", "sh", "-c", "exit 2")
    running = daemon.docker("ps", "--format", "{{.Names}}").stdout.split()
    assert a in running and b not in running
    assert daemon.docker("ps", "-a", "--filter", "exited=2", "--format", "{{.Names}}").stdout.split() == [b]
    assert daemon.docker("ps", "--filter", "label=grp=x", "--format", "{{.Names}}").stdout.split() == [a]
    assert b in daemon.docker("ps", "-a", "--filter", "status=exited", "--format", "{{.Names}}").stdout.split()
    assert "Exited (2)" in daemon.docker("ps", "-a", "--filter", f"name={b}", "--format", "{{.Status}}").stdout
    daemon.docker("rm", "-f", a, b, check=True)


def test_container_prune(daemon, busybox):
    n = name()
    daemon.docker("run", "--name", n, "busybox", "true", check=True)
    out = daemon.docker("container", "prune", "-f", check=True)
    assert "Deleted Containers" in out.stdout
    assert daemon.docker("inspect", n).returncode == 1


def test_restart_policy_on_failure(daemon, busybox):
    n = name()
    daemon.docker("run", "-d", "--name", n, "--restart", "on-failure:2", "busybox", "sh", "-c", "exit 1", check=True)
    wait_for(lambda: inspect(daemon, n)["RestartCount"] == 2 and not inspect(daemon, n)["State"]["Running"]
             and inspect(daemon, n)["State"]["Status"] == "exited", timeout=20)
    time.sleep(1)
    assert inspect(daemon, n)["RestartCount"] == 2
    daemon.docker("rm", "-f", n, check=True)


def test_restart_policy_always_and_stop(daemon, busybox):
    n = name()
    daemon.docker("run", "-d", "--name", n, "--restart", "always", "busybox", "sh", "-c", "sleep 0.2", check=True)
    wait_for(lambda: inspect(daemon, n)["RestartCount"] >= 2, timeout=20)
    daemon.docker("stop", "-t", "1", n, check=True)
    count = inspect(daemon, n)["RestartCount"]
    time.sleep(1.5)
    data = inspect(daemon, n)
    assert not data["State"]["Running"] and data["RestartCount"] == count
    daemon.docker("rm", "-f", n, check=True)


def test_rm_leaves_no_mounts_cgroups_or_monitors(daemon, busybox):
    n = name()
    cid = daemon.docker("run", "-d", "--name", n, "busybox", "sleep", "100", check=True).stdout.strip()
    merged = os.path.join(daemon.data_root, "containers", cid, "merged")
    assert merged in Path("/proc/self/mountinfo").read_text()
    daemon.docker("rm", "-f", n, check=True)
    assert cid not in Path("/proc/self/mountinfo").read_text()
    assert not os.path.exists(f"/sys/fs/cgroup/memory/pydock/{cid}")
    assert not os.path.exists(f"/sys/fs/cgroup/pydock/{cid}")
    assert not daemon.runtime_states(cid)
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=False).stdout
    assert cid[:16] not in ps
    assert not os.path.exists(os.path.join(daemon.data_root, "containers", cid))
    assert not os.path.exists(os.path.join(daemon.exec_root, "containers", cid))


def _volatile(target: str) -> bool:
    """Whether the overlay at `target` is volatile, by its superblock options (mountinfo's last field; kernels
    since 6.5 say `fsync=volatile`)."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == target:
            return bool({"volatile", "fsync=volatile"} & set(fields[-1].split(",")))
    raise AssertionError(f"{target} is not mounted")


def test_auto_remove_rootfs_is_volatile_and_mounts_again(daemon, busybox):
    """An --rm container's writable layer goes with it, so its overlay is volatile (its unmount syncs no
    disk), as podman mounts --rm containers; one that stays is not. The kernel refuses to mount a volatile
    upper again unless its mark is cleared: `docker cp` into a created --rm container mounts it once, the
    start again, and the file copied in is there."""
    kept, removed = name(), name()
    daemon.docker("run", "-d", "--name", kept, "busybox", "sleep", "60", check=True)
    daemon.docker("run", "-d", "--rm", "--name", removed, "busybox", "sleep", "60", check=True)
    try:
        def merged(n):
            return os.path.join(daemon.data_root, "containers", inspect(daemon, n)["Id"], "merged")
        assert not _volatile(merged(kept)) and _volatile(merged(removed))
    finally:
        daemon.docker("rm", "-f", kept, removed, check=True)
    n = name()
    daemon.docker("create", "--rm", "--name", n, "busybox", "cat", "/copied", check=True)
    daemon.docker("cp", "-", f"{n}:/", input=_tar_of("copied", b"in the volatile upper\n"), check=True)
    out = daemon.docker("start", "-a", n)
    assert (out.returncode, out.stdout) == (0, "in the volatile upper\n"), out.stderr
    wait_for(lambda: daemon.docker("inspect", n).returncode != 0)


def _tar_of(path: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(path)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_containers_survive_daemon_restart(daemon, busybox):
    a, b = name(), name()
    daemon.docker("run", "-d", "--name", a, "busybox", "sh", "-c", "echo before; sleep 100", check=True)
    daemon.docker("run", "-d", "--name", b, "--restart", "unless-stopped", "busybox", "sleep", "100", check=True)
    pid = inspect(daemon, a)["State"]["Pid"]
    daemon.stop()
    os.kill(pid, 0)  # still alive without the daemon
    daemon.start()
    names = daemon.docker("ps", "--format", "{{.Names}}").stdout.split()
    assert a in names and b in names
    assert inspect(daemon, a)["State"]["Pid"] == pid
    assert daemon.docker("logs", a).stdout == "before\n"
    daemon.docker("stop", "-t", "1", a, check=True)
    assert inspect(daemon, a)["State"]["ExitCode"] == 137
    daemon.docker("rm", "-f", a, b, check=True)


def test_container_exit_while_daemon_down_is_recorded(daemon, busybox):
    n = name()
    daemon.docker("run", "-d", "--name", n, "busybox", "sh", "-c", "sleep 1; exit 7", check=True)
    daemon.stop()
    time.sleep(2)
    daemon.start()
    data = inspect(daemon, n)
    assert data["State"]["Status"] == "exited" and data["State"]["ExitCode"] == 7
    daemon.docker("rm", n, check=True)


@pytest.mark.parametrize("policy,restarts", [("always", True), ("no", False)])
def test_restart_policy_across_daemon_restart(daemon, busybox, policy, restarts):
    n = name()
    daemon.docker("run", "-d", "--name", n, "--restart", policy, "busybox", "sleep", "100", check=True)
    pid = inspect(daemon, n)["State"]["Pid"]
    daemon.stop()
    os.kill(pid, 9)  # the container dies while nobody watches
    time.sleep(0.5)
    daemon.start()
    wait_for(lambda: inspect(daemon, n)["State"]["Running"] == restarts, timeout=10)
    daemon.docker("rm", "-f", n, check=True)


def test_ps_last_includes_stopped(daemon, busybox):
    n = name()
    daemon.docker("run", "--name", n, "busybox", "true", check=True)
    assert daemon.docker("ps", "-l", "--format", "{{.Names}}").stdout.split() == [n]
    daemon.docker("rm", n, check=True)
