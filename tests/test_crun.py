"""crun as the second OCI runtime: `docker run --runtime crun`, `pydockd --default-runtime crun`, and its seccomp
filter compiled once by the daemon (engine/runtime/oci.py, seccompbpf.py).

A daemon of this module's own runs with `--default-runtime crun`, through the
real docker CLI; containers on it run under Debian's crun, one of them under
runc beside them. crun (1.8) refuses a hybrid cgroup layout whose v2 tree has
controllers, as this VM's has (hugetlb): conftest's `crun_host` fixture
mounts such controllers as cgroup v1 hierarchies before any daemon here
starts.
"""
from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import CGROUP_ROOT, Daemon, busybox_daemon, new_name, removed_after

from engine.runtime import oci, seccomp, seccompbpf


@pytest.fixture(scope="module")
def crun_daemon(crun_host: str, busybox_tar: str) -> Iterator[Daemon]:
    with busybox_daemon(busybox_tar, "pydock-crun-", ("--default-runtime", "crun")) as d:
        yield d


@pytest.fixture
def crun_names(crun_daemon: Daemon) -> Iterator[list[str]]:
    with removed_after(crun_daemon) as created:
        yield created


def _in_runtime_root(d: Daemon, runtime: str, cid: str) -> bool:
    return os.path.isdir(os.path.join(d.exec_root, runtime, cid))


def test_info_lists_both_runtimes_and_the_default(crun_daemon: Daemon) -> None:
    info = json.loads(crun_daemon.docker("info", "--format", "{{json .}}", check=True).stdout)
    assert set(info["Runtimes"]) == {"runc", "crun"}
    assert info["DefaultRuntime"] == "crun"


def test_containers_run_under_the_runtime_they_name(crun_daemon: Daemon, crun_names: list[str]) -> None:
    """The default (crun) and `--runtime runc` side by side: each container's state is in its runtime's
    root, and inspect says which."""
    on_crun, on_runc = new_name(crun_names), new_name(crun_names)
    crun_daemon.docker("run", "-d", "--name", on_crun, "busybox", "sleep", "60", check=True)
    crun_daemon.docker("run", "-d", "--name", on_runc, "--runtime", "runc", "busybox", "sleep", "60", check=True)
    for name, runtime, other in ((on_crun, "crun", "runc"), (on_runc, "runc", "crun")):
        c = crun_daemon.inspect(name)
        assert c["HostConfig"]["Runtime"] == runtime
        assert _in_runtime_root(crun_daemon, runtime, c["Id"]) and not _in_runtime_root(crun_daemon, other, c["Id"])


def test_run_output_exit_code_and_removal(crun_daemon: Daemon) -> None:
    proc = crun_daemon.docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "out\n", "err\n")
    assert crun_daemon.docker("ps", "-aq").stdout == ""
    assert os.listdir(os.path.join(crun_daemon.exec_root, "crun")) in ([], [".cache"])


@pytest.mark.parametrize(("command", "code"), [("nosuchcommand", 127), ("/bin", 126)])
def test_unusable_command_exits_as_a_shell_would(crun_daemon: Daemon, command: str, code: int) -> None:
    proc = crun_daemon.docker("run", "--rm", "busybox", command)
    assert proc.returncode == code, proc.stderr
    assert "OCI runtime create failed" in proc.stderr


def test_default_seccomp_profile_is_applied_from_the_precompiled_filter(crun_daemon: Daemon,
                                                                         crun_names: list[str]) -> None:
    """A new user namespace is refused by Docker's default profile (no capability needed otherwise);
    unconfined allows it. The filter crun loaded is the daemon's compiled program."""
    name = new_name(crun_names)
    proc = crun_daemon.docker("run", "--name", name, "busybox", "unshare", "-U", "true")
    assert proc.returncode != 0 and "Operation not permitted" in proc.stderr
    cid = crun_daemon.inspect(name)["Id"]
    with open(os.path.join(crun_daemon.data_root, "containers", cid, "config.json")) as f:
        spec = json.load(f)
    assert base64.b64decode(spec["annotations"][seccompbpf.ANNOTATION])
    proc = crun_daemon.docker("run", "--rm", "--security-opt", "seccomp=unconfined", "busybox", "unshare", "-U",
                              "true")
    assert proc.returncode == 0, proc.stderr


def test_exec_pause_update_top_and_stop(crun_daemon: Daemon, crun_names: list[str]) -> None:
    name = new_name(crun_names)
    crun_daemon.docker("run", "-d", "--name", name, "busybox", "sleep", "60", check=True)
    assert crun_daemon.docker("exec", name, "echo", "hi", check=True).stdout == "hi\n"
    crun_daemon.docker("pause", name, check=True)
    assert crun_daemon.inspect(name)["State"]["Status"] == "paused"
    crun_daemon.docker("unpause", name, check=True)
    crun_daemon.docker("update", "--memory", "64m", "--memory-swap", "-1", name, check=True)
    cid = crun_daemon.inspect(name)["Id"]
    with open(os.path.join(CGROUP_ROOT, "memory", "pydock", cid, "memory.limit_in_bytes")) as f:
        assert int(f.read()) == 64 << 20
    assert "sleep 60" in crun_daemon.docker("top", name, check=True).stdout
    crun_daemon.docker("stop", "-t", "1", name, check=True)
    assert crun_daemon.inspect(name)["State"]["ExitCode"] == 137  # sleep as PID 1 ignores SIGTERM
    assert not _in_runtime_root(crun_daemon, "crun", cid)


def test_running_container_outlives_a_daemon_restart(crun_daemon: Daemon, crun_names: list[str]) -> None:
    """A restarted daemon finds the container's runtime from crun's state root and still drives it."""
    name = new_name(crun_names)
    crun_daemon.docker("run", "-d", "--name", name, "busybox", "sleep", "60", check=True)
    crun_daemon.stop()
    crun_daemon.start()
    assert crun_daemon.inspect(name)["State"]["Running"]
    assert "sleep 60" in crun_daemon.docker("top", name, check=True).stdout
    crun_daemon.docker("kill", name, check=True)
    deadline = time.monotonic() + 10
    while crun_daemon.inspect(name)["State"]["Running"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert crun_daemon.inspect(name)["State"]["ExitCode"] == 137


def test_unknown_runtime_is_refused(crun_daemon: Daemon) -> None:
    proc = crun_daemon.docker("create", "--runtime", "nosuch", "busybox")
    assert proc.returncode != 0
    assert "Unknown runtime specified nosuch" in proc.stderr
    assert crun_daemon.docker("ps", "-aq").stdout == ""


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
    assert parse_args(["--config-file", str(config)]).default_runtime == "runc"
    config.write_text('{"default-runtime": "kata"}')
    with pytest.raises(SystemExit, match="invalid default-runtime 'kata': choose from runc, crun"):
        parse_args(["--config-file", str(config)])
