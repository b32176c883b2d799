"""The API routes and services in-process on the in-memory runtime: no daemon, runc or root, in seconds.

Tornado's test client talks to `make_app` over an Engine built with
`FakeRuntime`; the black-box suites (real pydockd, real runc) stay the
end-to-end layer.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import pytest
from tornado.testing import AsyncHTTPTestCase

from engine.api import make_app
from engine.config import EngineConfig
from engine.engine import Engine
from engine.runtime.fake import FakeRuntime
from engine.runtime.rootfs import CopiedRootFS


def _tar(files: dict[str, bytes]) -> bytes:
    """Entries owned by the caller: unpacking chowns to the owner, which only root may do for another user."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.uid, info.gid = os.geteuid(), os.getegid()
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def tiny_image_tar(tag: str = "tiny:latest") -> bytes:
    """A `docker save` archive of a one-layer image holding a single file."""
    layer = _tar({"hello.txt": b"hello\n"})
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["echo", "hi"]},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [tag], "Layers": ["l1/layer.tar"]}]).encode()
    return _tar({"manifest.json": manifest, config_name: config, "l1/layer.tar": layer})


class InProcessApi(AsyncHTTPTestCase):
    def get_app(self) -> Any:
        self.tmp = Path(tempfile.mkdtemp(prefix="pydock-inprocess-"))
        cfg = EngineConfig(data_root=str(self.tmp / "data"), exec_root=str(self.tmp / "exec"))
        self.engine = Engine(cfg, runtime=FakeRuntime(), rootfs=CopiedRootFS())
        return make_app(self.engine)

    def tearDown(self) -> None:
        super().tearDown()
        self.engine.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is None and method in ("POST", "PUT"):
            data = b""
        headers = {"Content-Type": "application/x-tar" if raw is not None else "application/json"}
        resp = self.fetch(path, method=method, body=data, headers=headers, raise_error=False)
        text = resp.body.decode() if resp.body else ""
        try:
            return resp.code, json.loads(text) if text else None
        except ValueError:
            return resp.code, text

    def test_ping_and_version(self) -> None:
        assert self.call("GET", "/_ping") == (200, "OK")
        code, version = self.call("GET", "/v1.41/version")
        assert code == 200 and version["ApiVersion"]

    def test_volumes(self) -> None:
        assert self.call("POST", "/v1.41/volumes/create", {"Name": "v1"})[0] == 201
        code, listing = self.call("GET", "/v1.41/volumes")
        assert code == 200 and [v["Name"] for v in listing["Volumes"]] == ["v1"]
        assert self.call("GET", "/v1.41/volumes/nope")[0] == 404
        assert self.call("DELETE", "/v1.41/volumes/v1")[0] == 204
        assert self.call("GET", "/v1.41/volumes/v1")[0] == 404

    def test_image_load_and_container_records(self) -> None:
        code, _ = self.call("POST", "/v1.41/images/load?quiet=1", raw=tiny_image_tar())
        assert code == 200
        assert self.call("GET", "/v1.41/images/tiny:latest/json")[0] == 200
        code, created = self.call("POST", "/v1.41/containers/create?name=c1", {"Image": "tiny"})
        assert code == 201, created
        assert self.call("POST", "/v1.41/containers/create?name=c1", {"Image": "tiny"})[0] == 409
        assert self.call("POST", "/v1.41/containers/create", {"Image": "missing"})[0] == 404
        assert self.call("POST", "/v1.41/containers/create?name=bad%2Fname", {"Image": "tiny"})[0] == 400
        code, info = self.call("GET", "/v1.41/containers/c1/json")
        assert code == 200 and info["Id"] == created["Id"] and info["State"]["Status"] == "created"
        code, listing = self.call("GET", "/v1.41/containers/json?all=1")
        assert code == 200 and [c["Names"] for c in listing] == [["/c1"]]
        assert self.call("GET", "/v1.41/containers/nope/json")[0] == 404
        assert self.call("DELETE", "/v1.41/containers/c1")[0] == 204
        assert self.call("GET", "/v1.41/containers/c1/json")[0] == 404

    def _container(self, cmd: list[str]) -> str:
        assert self.call("POST", "/v1.41/images/load?quiet=1", raw=tiny_image_tar())[0] == 200
        code, created = self.call("POST", "/v1.41/containers/create",
                                  {"Image": "tiny", "Cmd": cmd, "HostConfig": {"NetworkMode": "none"}})
        assert code == 201, created
        return str(created["Id"])

    def test_run_logs_wait(self) -> None:
        cid = self._container(["echo", "hi"])
        assert self.call("POST", f"/v1.41/containers/{cid}/start")[0] == 204
        code, waited = self.call("POST", f"/v1.41/containers/{cid}/wait")
        assert (code, waited["StatusCode"]) == (200, 0)
        resp = self.fetch(f"/v1.41/containers/{cid}/logs?stdout=1", raise_error=False)
        assert resp.code == 200 and resp.body.endswith(b"hi\n")
        code, info = self.call("GET", f"/v1.41/containers/{cid}/json")
        assert info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 0
        assert self.call("DELETE", f"/v1.41/containers/{cid}")[0] == 204

    def test_stop_exec_and_conflicts(self) -> None:
        cid = self._container(["sleep", "30"])
        assert self.call("POST", f"/v1.41/containers/{cid}/start")[0] == 204
        assert self.call("POST", f"/v1.41/containers/{cid}/start")[0] == 304
        assert self.call("DELETE", f"/v1.41/containers/{cid}")[0] == 409
        code, ex = self.call("POST", f"/v1.41/containers/{cid}/exec", {"Cmd": ["sh", "-c", "exit 3"]})
        assert code == 201, ex
        assert self.call("POST", f"/v1.41/exec/{ex['Id']}/start", {"Detach": False})[0] == 200
        code, exinfo = self.call("GET", f"/v1.41/exec/{ex['Id']}/json")
        assert code == 200 and exinfo["ExitCode"] == 3 and not exinfo["Running"]
        assert self.call("GET", "/v1.41/exec/nope/json")[0] == 404
        assert self.call("POST", f"/v1.41/containers/{cid}/stop?t=1")[0] == 204
        code, info = self.call("GET", f"/v1.41/containers/{cid}/json")
        assert info["State"]["Status"] == "exited"
        assert self.call("POST", f"/v1.41/containers/{cid}/exec", {"Cmd": ["true"]})[0] == 409
        assert self.call("DELETE", f"/v1.41/containers/{cid}")[0] == 204

    def test_pause_kill_restart_and_prune(self) -> None:
        cid = self._container(["sleep", "30"])
        assert self.call("POST", f"/v1.41/containers/{cid}/pause")[0] == 409  # not running yet
        assert self.call("POST", f"/v1.41/containers/{cid}/start")[0] == 204
        assert self.call("POST", f"/v1.41/containers/{cid}/pause")[0] == 204
        code, err = self.call("POST", f"/v1.41/containers/{cid}/pause")
        assert (code, err["message"]) == (409, f"Container {cid} is already paused")
        code, listed = self.call("GET", '/v1.41/containers/json?filters={"status":["paused"]}')
        assert [c["Id"] for c in listed] == [cid]
        assert self.call("POST", f"/v1.41/containers/{cid}/unpause")[0] == 204
        assert self.call("POST", f"/v1.41/containers/{cid}/unpause")[0] == 409
        assert self.call("POST", f"/v1.41/containers/{cid}/restart?t=1")[0] == 204
        code, info = self.call("GET", f"/v1.41/containers/{cid}/json")
        assert info["State"]["Running"] and info["State"]["Status"] == "running"
        assert self.call("POST", f"/v1.41/containers/{cid}/kill")[0] == 204
        code, waited = self.call("POST", f"/v1.41/containers/{cid}/wait")
        assert (code, waited["StatusCode"]) == (200, 137)
        code, err = self.call("POST", f"/v1.41/containers/{cid}/kill")
        assert code == 409 and "is not running" in err["message"]
        code, err = self.call("POST", '/v1.41/containers/prune?filters={"colour":["red"]}')
        assert (code, err["message"]) == (400, "invalid filter 'colour'")
        code, pruned = self.call("POST", "/v1.41/containers/prune")
        assert code == 200 and pruned["ContainersDeleted"] == [cid]
        assert self.call("GET", f"/v1.41/containers/{cid}/json")[0] == 404


SYSTEM_PYTHON = "/usr/bin/python3"
AS_NOBODY = ["test_ping_and_version", "test_volumes", "test_image_load_and_container_records", "test_run_logs_wait",
             "test_stop_exec_and_conflicts", "test_pause_kill_restart_and_prune"]


def _readable_site_packages(dest: Path) -> None:
    """Copy the third-party packages this module has imported where user `nobody` can read them.

    The interpreter's own site-packages may sit under a root-only home
    (/root/.pyenv); the system Python of the same minor version can use the copies.
    """
    roots = set()
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None) or ""
        if "site-packages" + os.sep in path:
            site, rest = path.split("site-packages" + os.sep, 1)
            roots.add(os.path.join(site + "site-packages", rest.split(os.sep)[0]))
    dest.mkdir(parents=True, exist_ok=True)  # a single-file module may come first
    for root in roots:
        target = dest / os.path.basename(root)
        if os.path.isdir(root):
            shutil.copytree(root, target, dirs_exist_ok=True)
        else:
            shutil.copy(root, target)


@pytest.mark.skipif(os.geteuid() != 0, reason="already running unprivileged: the tests above prove it")
@pytest.mark.skipif(not os.path.exists(SYSTEM_PYTHON) or not shutil.which("setpriv"), reason="needs setpriv and "
                    + SYSTEM_PYTHON)
def test_runs_as_nobody() -> None:
    """The fake engine makes no root-only call (mount, runc, nft, cgroups): the tests pass as `nobody`."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" not in subprocess.run(
            [SYSTEM_PYTHON, "--version"], check=False, capture_output=True, text=True).stdout:
        pytest.skip("the system Python's minor version differs: the copied extension modules would not load")
    repo = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="pydock-nobody-") as tmp:  # pytest's tmp_path is root-only
        os.chmod(tmp, 0o755)
        site = Path(tmp) / "site"
        _readable_site_packages(site)
        proc = _run_as_nobody(repo, site)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "OK" in proc.stderr


def _run_as_nobody(repo: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", SYSTEM_PYTHON, "-m", "unittest", "-q",
         *[f"test_inprocess_api.InProcessApi.{name}" for name in AS_NOBODY]],
        cwd=repo / "tests", env={"PYTHONPATH": f"{site}:{repo}:{repo / 'tests'}", "PATH": "/usr/bin:/bin",
                                 "HOME": "/tmp"},
        check=False, capture_output=True, text=True, timeout=60)
