"""The two OCI runtimes, runc and crun: `docker run --runtime`, `pydockd --default-runtime`, crun as the default
where it runs, and crun's seccomp filter compiled once by the daemon (engine/runtime/oci.py, seccompbpf.py).

The suite's daemons run containers under crun (conftest's `crun_host` makes
this VM's cgroup layout one crun runs on), so the core verbs are run here
again, through the real docker CLI, on a daemon of this module's own for
each runtime (`--default-runtime runc` and `crun`), each with a container
of the other runtime beside its own.
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import CGROUP_ROOT, Daemon, busybox_daemon, new_name, removed_after

from engine.config import EngineConfig
from engine.runtime import oci, sealedexe, seccomp, seccompbpf

OTHER = {oci.RUNC: oci.CRUN, oci.CRUN: oci.RUNC}


@pytest.fixture(scope="module", params=[oci.CRUN, oci.RUNC])
def runtime(request: pytest.FixtureRequest) -> str:
    """The default runtime of `runtime_daemon`."""
    return str(request.param)


@pytest.fixture(scope="module")
def runtime_daemon(runtime: str, busybox_tar: str) -> Iterator[Daemon]:
    with busybox_daemon(busybox_tar, f"pydock-{runtime}-", ("--default-runtime", runtime)) as d:
        yield d


@pytest.fixture
def names(runtime_daemon: Daemon) -> Iterator[list[str]]:
    with removed_after(runtime_daemon) as created:
        yield created


def _in_runtime_root(d: Daemon, runtime: str, cid: str) -> bool:
    return os.path.isdir(os.path.join(d.exec_root, runtime, cid))


def test_info_lists_both_runtimes_and_the_default(runtime_daemon: Daemon, runtime: str) -> None:
    info = json.loads(runtime_daemon.docker("info", "--format", "{{json .}}", check=True).stdout)
    assert set(info["Runtimes"]) == {"runc", "crun"}
    assert info["DefaultRuntime"] == runtime


def test_crun_is_the_default_where_it_runs(daemon: Daemon) -> None:
    """The suite's daemon, started without --default-runtime on a host where crun runs."""
    info = json.loads(daemon.docker("info", "--format", "{{json .}}", check=True).stdout)
    assert info["DefaultRuntime"] == "crun" and set(info["Runtimes"]) == {"runc", "crun"}


def test_the_default_is_the_configured_one_else_crun_where_offered_else_runc() -> None:
    offered = {"runc": "/usr/sbin/runc", "crun": "/usr/bin/crun"}
    with pytest.MonkeyPatch.context() as m:
        m.setattr(EngineConfig, "runtimes", property(lambda self: offered))
        assert EngineConfig().chosen_runtime == "crun"
        assert EngineConfig(default_runtime="runc").chosen_runtime == "runc"
        del offered["crun"]
        assert EngineConfig().chosen_runtime == "runc"


def test_containers_run_under_the_runtime_they_name(runtime_daemon: Daemon, runtime: str,
                                                    names: list[str]) -> None:
    """The default and `--runtime <the other>` side by side: each container's state is in its runtime's
    root, and inspect says which."""
    mine, theirs = new_name(names), new_name(names)
    runtime_daemon.docker("run", "-d", "--name", mine, "busybox", "sleep", "60", check=True)
    runtime_daemon.docker("run", "-d", "--name", theirs, "--runtime", OTHER[runtime], "busybox", "sleep", "60",
                          check=True)
    for name, used in ((mine, runtime), (theirs, OTHER[runtime])):
        c = runtime_daemon.inspect(name)
        assert c["HostConfig"]["Runtime"] == used
        assert _in_runtime_root(runtime_daemon, used, c["Id"])
        assert not _in_runtime_root(runtime_daemon, OTHER[used], c["Id"])


def test_run_output_exit_code_and_removal(runtime_daemon: Daemon) -> None:
    proc = runtime_daemon.docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "out\n", "err\n")
    assert runtime_daemon.docker("ps", "-aq").stdout == ""
    assert runtime_daemon.runtime_states() == []


@pytest.mark.parametrize(("command", "code"), [("nosuchcommand", 127), ("/bin", 126)])
def test_unusable_command_exits_as_a_shell_would(runtime_daemon: Daemon, command: str, code: int) -> None:
    proc = runtime_daemon.docker("run", "--rm", "busybox", command)
    assert proc.returncode == code, proc.stderr
    assert "OCI runtime create failed" in proc.stderr


def test_default_seccomp_profile_is_applied(runtime_daemon: Daemon, runtime: str, names: list[str]) -> None:
    """A new user namespace is refused by Docker's default profile (no capability needed otherwise);
    unconfined allows it. crun loads the daemon's compiled program; runc compiles the profile itself."""
    name = new_name(names)
    proc = runtime_daemon.docker("run", "--name", name, "busybox", "unshare", "-U", "true")
    assert proc.returncode != 0 and "Operation not permitted" in proc.stderr
    cid = runtime_daemon.inspect(name)["Id"]
    with open(os.path.join(runtime_daemon.exec_root, "containers", cid, "config.json")) as f:
        spec = json.load(f)
    if runtime == oci.CRUN:
        assert base64.b64decode(spec["annotations"][seccompbpf.ANNOTATION])
    else:
        assert seccompbpf.ANNOTATION not in spec.get("annotations", {})
    proc = runtime_daemon.docker("run", "--rm", "--security-opt", "seccomp=unconfined", "busybox", "unshare",
                                 "-U", "true")
    assert proc.returncode == 0, proc.stderr


def test_exec_pause_update_top_and_stop(runtime_daemon: Daemon, runtime: str, names: list[str]) -> None:
    name = new_name(names)
    runtime_daemon.docker("run", "-d", "--name", name, "busybox", "sleep", "60", check=True)
    assert runtime_daemon.docker("exec", name, "echo", "hi", check=True).stdout == "hi\n"
    runtime_daemon.docker("pause", name, check=True)
    assert runtime_daemon.inspect(name)["State"]["Status"] == "paused"
    runtime_daemon.docker("unpause", name, check=True)
    runtime_daemon.docker("update", "--memory", "64m", "--memory-swap", "-1", name, check=True)
    cid = runtime_daemon.inspect(name)["Id"]
    with open(os.path.join(CGROUP_ROOT, "memory", "pydock", cid, "memory.limit_in_bytes")) as f:
        assert int(f.read()) == 64 << 20
    assert "sleep 60" in runtime_daemon.docker("top", name, check=True).stdout
    runtime_daemon.docker("stop", "-t", "1", name, check=True)
    assert runtime_daemon.inspect(name)["State"]["ExitCode"] == 137  # sleep as PID 1 ignores SIGTERM
    assert not _in_runtime_root(runtime_daemon, runtime, cid)


def test_running_container_outlives_a_daemon_restart(runtime_daemon: Daemon, runtime: str,
                                                     names: list[str]) -> None:
    """A restarted daemon finds the container's runtime from the runtimes' state roots and still drives it,
    the other runtime's too."""
    mine, theirs = new_name(names), new_name(names)
    runtime_daemon.docker("run", "-d", "--name", mine, "busybox", "sleep", "60", check=True)
    runtime_daemon.docker("run", "-d", "--name", theirs, "--runtime", OTHER[runtime], "busybox", "sleep", "60",
                          check=True)
    runtime_daemon.stop()
    runtime_daemon.start()
    for name in (mine, theirs):
        assert runtime_daemon.inspect(name)["State"]["Running"]
        assert "sleep 60" in runtime_daemon.docker("top", name, check=True).stdout
        runtime_daemon.docker("kill", name, check=True)
        deadline = time.monotonic() + 10
        while runtime_daemon.inspect(name)["State"]["Running"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert runtime_daemon.inspect(name)["State"]["ExitCode"] == 137


def _sealed_copies(pid: int) -> list[tuple[str, int, bytes]]:
    """The memfds process `pid` holds: name, seals and content."""
    found = []
    fd_dir = f"/proc/{pid}/fd"
    for n in os.listdir(fd_dir):
        link = os.readlink(os.path.join(fd_dir, n))
        if link.startswith("/memfd:"):
            fd = os.open(os.path.join(fd_dir, n), os.O_RDONLY)
            try:
                found.append((link, fcntl.fcntl(fd, fcntl.F_GET_SEALS), os.pread(fd, 1 << 26, 0)))
            finally:
                os.close(fd)
    return found


def test_monitor_runs_its_runtime_from_a_sealed_copy(runtime_daemon: Daemon, runtime: str, names: list[str]) -> None:
    """The runtime binary reaches each monitor as the daemon's sealed in-memory copy (sealedexe.py), which
    runc and crun do not copy again: the monitor of a running container holds it, sealed against writes and
    the same bytes as the binary; the container's process holds no copy."""
    name = new_name(names)
    runtime_daemon.docker("run", "-d", "--name", name, "busybox", "sleep", "60", check=True)
    cid = runtime_daemon.inspect(name)["Id"]
    with open(os.path.join(runtime_daemon.exec_root, "s", cid[:16], "shim.pid")) as f:
        monitor = int(f.read())
    binary = oci.find(runtime)
    assert binary
    with open(binary, "rb") as f:
        content = f.read()
    assert _sealed_copies(monitor) == [(f"/memfd:{os.path.basename(binary)} (deleted)", sealedexe.SEALS, content)]
    assert _sealed_copies(runtime_daemon.inspect(name)["State"]["Pid"]) == []
    assert runtime_daemon.docker("exec", name, "echo", "hi", check=True).stdout == "hi\n"


def test_unknown_runtime_is_refused(runtime_daemon: Daemon) -> None:
    proc = runtime_daemon.docker("create", "--runtime", "nosuch", "busybox")
    assert proc.returncode != 0
    assert "Unknown runtime specified nosuch" in proc.stderr
    assert runtime_daemon.docker("ps", "-aq").stdout == ""


def test_crun_is_not_offered_where_it_cannot_run(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    controllers = tmp_path / "cgroup.controllers"
    controllers.write_text("hugetlb\n")
    monkeypatch.setattr(oci, "_HYBRID_V2", str(controllers))
    assert "hybrid cgroup" in oci.why_unusable(oci.CRUN, "/usr/bin/crun")
    assert oci.usable_crun() == ""
    assert oci.why_unusable(oci.RUNC, "/usr/sbin/runc") == ""
    controllers.write_text("")
    assert oci.why_unusable(oci.CRUN, "/usr/bin/crun") == ""
    assert "not installed" in oci.why_unusable(oci.CRUN, "")


def _crun_compiles(crun: str, bundle: str, section: dict[str, Any], tmp: str) -> bytes:
    """The filter crun itself compiles for `section` (it keeps it in its state directory at create)."""
    with open(os.path.join(bundle, "config.json")) as f:
        spec = json.load(f)
    spec["linux"]["seccomp"] = section
    spec["process"]["terminal"] = False
    spec.pop("annotations", None)
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(spec, f)
    root = os.path.join(tmp, "crun-root")
    # the created process keeps its stdio until it is deleted: no pipe may wait for its end
    subprocess.run([crun, "--root", root, "create", "--bundle", bundle, "cmp"], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with open(os.path.join(root, "cmp", "seccomp.bpf"), "rb") as f:
            return f.read()
    finally:
        subprocess.run([crun, "--root", root, "delete", "--force", "cmp"], check=False, capture_output=True)


def test_precompiled_filter_is_the_one_crun_compiles(crun_host: str, busybox_tar: str, tmp_path: Any) -> None:
    """Byte for byte, for Docker's default profile as a container gets it (with and without an added
    capability, which opens more syscalls) and for rules comparing one argument twice (a rule each)."""
    bundle = tmp_path / "bundle"
    (bundle / "rootfs").mkdir(parents=True)
    subprocess.run(["tar", "-xf", busybox_tar, "-C", str(bundle / "rootfs")], check=True)
    subprocess.run([crun_host, "spec"], cwd=bundle, check=True)
    default = seccomp.default_profile()
    sections = [seccomp.to_oci(default, ["CAP_CHOWN", "CAP_KILL"]),
                seccomp.to_oci(default, ["CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN"]),
                {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                 "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
                               "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                                        {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]},
                              {"names": ["nosuchsyscall", "mkdir"], "action": "SCMP_ACT_KILL"}]}]
    for section in sections:
        assert section is not None
        mine = seccompbpf.precompiled(section)
        assert mine is not None
        assert base64.b64decode(mine) == _crun_compiles(crun_host, str(bundle), section, str(tmp_path))


def test_sections_crun_must_compile_itself_are_left_to_it() -> None:
    assert seccompbpf.precompiled({"defaultAction": "SCMP_ACT_NOSUCH"}) is None
    assert seccompbpf.precompiled({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/x.sock"}) is None
    assert seccompbpf.precompiled({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 3}) is None
    spec: dict[str, Any] = {"linux": {"seccomp": {"defaultAction": "SCMP_ACT_NOSUCH"}}}
    oci.prepare_spec(oci.CRUN, spec)
    assert "annotations" not in spec
    spec = {"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW"}}}
    oci.prepare_spec(oci.RUNC, spec)
    assert "annotations" not in spec
    oci.prepare_spec(oci.CRUN, spec)
    assert seccompbpf.ANNOTATION in spec["annotations"]


def test_default_runtime_option_and_daemon_json(tmp_path: Any) -> None:
    from engine.pydockd import parse_args
    config = tmp_path / "daemon.json"
    config.write_text('{"default-runtime": "crun"}')
    assert parse_args(["--config-file", str(config)]).default_runtime == "crun"
    config.write_text("{}")
    assert parse_args(["--config-file", str(config)]).default_runtime == ""  # crun where offered, else runc
    config.write_text('{"default-runtime": "kata"}')
    with pytest.raises(SystemExit, match="invalid default-runtime 'kata': choose from runc, crun"):
        parse_args(["--config-file", str(config)])
