"""The in-memory runtime keeps the runtime boundary's contract, so service tests can stand on it.

Runs in-process, without root: it checks the scripted commands, the json-file
log the logs service reads, and the monitor's line protocol on wait, attach
and exec connections.
"""
from __future__ import annotations

import json
import signal
import struct
from pathlib import Path

import pytest

from engine.errors import Conflict
from engine.runtime.base import ContainerRuntime
from engine.runtime.fake import FakeRuntime


def _launch(rt: FakeRuntime, tmp_path: Path, cid: str, args: list[str]) -> Path:
    (tmp_path / "config.json").write_text(json.dumps({"process": {"args": args}}))
    log = tmp_path / f"{cid}-json.log"
    rt.launch(cid, str(tmp_path), tty=False, stdin=False, log={"path": str(log)},
              console_size=None, cgroup_path="/x", runtime="runc")
    return log


def _run_to_exit(rt: FakeRuntime, cid: str) -> dict:
    with rt.connect(cid, {"op": "wait"}, timeout=5) as wait:
        assert rt.request(cid, {"op": "start"})["pid"] > 0
        result = rt.read_line(wait)
    assert result is not None
    return result


def test_fake_meets_the_protocol() -> None:
    runtime: ContainerRuntime = FakeRuntime()
    assert runtime.status("nope") == ("", 0)


def test_echo_logs_json_file_and_exits_0(tmp_path: Path) -> None:
    rt = FakeRuntime()
    log = _launch(rt, tmp_path, "c1", ["echo", "hi", "there"])
    assert rt.status("c1")[0] == "created"
    assert _run_to_exit(rt, "c1")["ExitCode"] == 0
    line = json.loads(log.read_text().splitlines()[0])
    assert (line["log"], line["stream"]) == ("hi there\n", "stdout")
    assert line["time"].endswith("Z")
    assert rt.status("c1") == ("", 0)
    assert rt.read_exit("c1")["ExitCode"] == 0


@pytest.mark.parametrize("args, code", [(["sh", "-c", "exit 3"], 3), (["no-such-cmd"], 127), (["false"], 1)])
def test_scripted_exit_codes(tmp_path: Path, args: list[str], code: int) -> None:
    rt = FakeRuntime()
    _launch(rt, tmp_path, "c1", args)
    assert _run_to_exit(rt, "c1")["ExitCode"] == code


def test_sleep_runs_until_killed(tmp_path: Path) -> None:
    rt = FakeRuntime()
    _launch(rt, tmp_path, "c1", ["sleep", "30"])
    with rt.connect("c1", {"op": "wait"}, timeout=5) as wait:
        rt.request("c1", {"op": "start"})
        assert rt.alive("c1") and rt.status("c1")[0] == "running"
        rt.pause("c1")
        assert rt.status("c1")[0] == "paused"
        rt.resume("c1")
        rt.kill("c1", signal.SIGTERM)
        assert rt.read_line(wait)["ExitCode"] == 128 + signal.SIGTERM
    assert not rt.alive("c1")
    with pytest.raises(Conflict):
        rt.kill("c1", signal.SIGKILL)
    with pytest.raises(Conflict):
        rt.request("c1", {"op": "start"})
    rt.cleanup("c1")
    assert not rt.has_state("c1")


def test_exec_streams_multiplexed_output(tmp_path: Path) -> None:
    rt = FakeRuntime()
    rt.launch_exec("e1", "c1", {"args": ["echo", "x"], "terminal": False}, stdin=False)
    attach = rt.attach("e1", stdin=False, stdout=True, stderr=True, close_stdin=False)
    pid, wait = rt.start_exec("e1")
    assert pid > 0
    assert rt.read_line(wait)["ExitCode"] == 0
    data = b""
    while chunk := attach.recv(4096):
        data += chunk
    assert data == struct.pack(">BxxxL", 1, 2) + b"x\n"


def test_engine_uses_the_runtime_it_is_given(tmp_path: Path) -> None:
    from engine.config import EngineConfig
    from engine.engine import Engine

    fake = FakeRuntime()
    engine = Engine(EngineConfig(data_root=str(tmp_path / "data"), exec_root=str(tmp_path / "exec")), runtime=fake)
    try:
        assert engine.runtime is fake
        assert engine.execs.runtime is fake
        assert engine.stats.runtime is fake
    finally:
        engine.close()
