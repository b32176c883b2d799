"""The Docker API inside a real Jupyter server, behind Jupyter's authentication."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from conftest import DOCKER, REPO, _cleanup_mounts

TOKEN = "pydock-test-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterServer:
    def __init__(self, root: str, extra_args: tuple[str, ...] = ()) -> None:
        self.root = root
        self.extra_args = extra_args
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_timeout = 60.0  # seconds until the extension must answer its ping
        self.docker_config = os.path.join(root, "docker-config")
        os.makedirs(self.docker_config, exist_ok=True)
        with open(os.path.join(self.docker_config, "config.json"), "w") as f:
            json.dump({"HttpHeaders": {"Authorization": f"token {TOKEN}"}}, f)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/jp/"

    @property
    def docker_host(self) -> str:
        return f"tcp://127.0.0.1:{self.port}/jp/pydock"

    def start(self) -> None:
        with open(os.path.join(self.root, "jupyter.log"), "ab") as log:  # the server keeps its own copy
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jupyter_server", "--allow-root", "--no-browser",
                 f"--ServerApp.port={self.port}", "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}",
                 "--ServerApp.base_url=/jp/", "--ServerApp.jpserver_extensions={'pydock_ext': True}",
                 f"--PydockExtension.data_root={self.root}/data", f"--PydockExtension.exec_root={self.root}/run",
                 *self.extra_args],
                cwd=self.root, stdout=log, stderr=log, start_new_session=True,
                env={**os.environ, "PYTHONPATH": REPO})
        deadline = time.time() + self.start_timeout
        while time.time() < deadline:
            try:
                r = requests.get(self.base + "pydock/_ping", headers={"Authorization": f"token {TOKEN}"}, timeout=2)
                if r.status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            assert self.proc.poll() is None, Path(self.root, "jupyter.log").read_text()[-3000:]
            time.sleep(0.2)
        raise RuntimeError("jupyter server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.proc = None

    def docker(self, *args: str, authenticated: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DOCKER_HOST": self.docker_host,
               "DOCKER_CONFIG": self.docker_config if authenticated else os.path.join(self.root, "nocfg")}
        return subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=60, env=env, check=False)


@contextlib.contextmanager
def own_server(prefix: str, extra_args: tuple[str, ...] = (), env: dict[str, str] | None = None
               ) -> Iterator[JupyterServer]:
    """A started Jupyter server with an engine of its own on a fresh root, whose kernels inherit a clean
    environment (no engine address; a private runtime dir to find the server in; plus `env`); everything it
    made is removed afterwards."""
    root = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.makedirs(os.path.join(root, "work"))
    saved = dict(os.environ)
    for name in ("PYDOCK_HOST", "DOCKER_HOST", "DOCKER_CONFIG"):
        os.environ.pop(name, None)
    os.environ["JUPYTER_RUNTIME_DIR"] = os.path.join(root, "runtime")
    os.environ.update({k: v.format(root=root) for k, v in (env or {}).items()})
    server = JupyterServer(root, extra_args)
    try:
        server.start()
        yield server
    finally:
        os.environ.clear()
        os.environ.update(saved)
        ids = server.docker("ps", "-aq").stdout.split() if server.proc else []
        if ids:
            server.docker("rm", "-f", *ids)
        server.stop()
        _cleanup_mounts(root)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def jupyter(busybox_tar: str) -> Iterator[JupyterServer]:
    root = tempfile.mkdtemp(prefix="pydock-jp-", dir="/tmp")
    server = JupyterServer(root)
    server.start()
    try:
        out = server.docker("import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:latest")
        assert out.returncode == 0, out.stderr
        yield server
    finally:
        ids = server.docker("ps", "-aq").stdout.split() if server.proc else []
        if ids:
            server.docker("rm", "-f", *ids)
        server.stop()
        _cleanup_mounts(root)
        shutil.rmtree(root, ignore_errors=True)


def test_docker_cli_through_jupyter(jupyter):
    out = jupyter.docker("run", "--rm", "busybox", "echo", "via jupyter")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "via jupyter\n"
    out = subprocess.run([DOCKER, "run", "--rm", "-i", "busybox", "cat"], input="piped\n", capture_output=True,
                         text=True, timeout=60,
                         env={**os.environ, "DOCKER_HOST": jupyter.docker_host, "DOCKER_CONFIG": jupyter.docker_config}, check=False)
    assert out.stdout == "piped\n"


@pytest.mark.parametrize("method,path", [("GET", "containers/json"), ("GET", "v1.47/images/json"),
                                         ("POST", "containers/create"), ("HEAD", "_ping"),
                                         ("POST", "containers/x/attach?stream=1")])
def test_unauthenticated_requests_are_refused(jupyter, method, path):
    r = requests.request(method, jupyter.base + "pydock/" + path, json={"Image": "busybox"}, timeout=10)
    assert r.status_code == 403
    r = requests.request(method, jupyter.base + "pydock/" + path, headers={"Authorization": "token wrong"},
                         json={"Image": "busybox"}, timeout=10)
    assert r.status_code == 403


def test_unauthenticated_cli_cannot_create(jupyter):
    before = jupyter.docker("ps", "-aq").stdout
    out = jupyter.docker("create", "busybox", "true", authenticated=False)
    assert out.returncode != 0
    assert jupyter.docker("ps", "-aq").stdout == before


def test_docker_errors_keep_docker_shape(jupyter):
    r = requests.get(jupyter.base + "pydock/v1.47/containers/nope/json",
                     headers={"Authorization": f"token {TOKEN}"}, timeout=10)
    assert r.status_code == 404
    assert r.json() == {"message": "No such container: nope"}


def test_containers_survive_jupyter_restart(jupyter):
    cid = jupyter.docker("run", "-d", "busybox", "sleep", "100").stdout.strip()
    assert cid
    pid = json.loads(jupyter.docker("inspect", cid).stdout)[0]["State"]["Pid"]
    jupyter.stop()
    os.kill(pid, 0)
    jupyter.start()
    assert cid in jupyter.docker("ps", "-q", "--no-trunc").stdout
    assert jupyter.docker("rm", "-f", cid).returncode == 0


def test_extension_enabled_on_install(tmp_path):
    """A wheel carries the jupyter_server_config.d file that enables the extension."""
    import zipfile
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "-w", str(tmp_path), REPO], check=True, capture_output=True, timeout=300)
    wheel = next(tmp_path.glob("pydock-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    path = next(n for n in names if n.endswith("etc/jupyter/jupyter_server_config.d/pydock_ext.json"))
    config = json.loads(zipfile.ZipFile(wheel).read(path))
    assert config["ServerApp"]["jpserver_extensions"]["pydock_ext"] is True
    listing = subprocess.run([sys.executable, "-m", "jupyter", "server", "extension", "list"],
                             capture_output=True, text=True, timeout=60, check=False)
    assert "pydock_ext" in listing.stdout + listing.stderr


def test_proxy_mode_forwards_to_a_running_pydockd(daemon, busybox):
    """`PydockExtension.daemon_socket`: Jupyter authenticates, pydockd answers, streams and hijacks included."""
    root = tempfile.mkdtemp(prefix="pydock-jpx-", dir="/tmp")
    server = JupyterServer(root, (f"--PydockExtension.daemon_socket={daemon.socket}",))
    server.start()
    try:
        assert not os.path.exists(os.path.join(root, "data")), "proxy mode must not start an engine"
        out = server.docker("run", "--rm", "busybox", "echo", "via proxy")
        assert (out.returncode, out.stdout) == (0, "via proxy\n"), out.stderr
        piped = subprocess.run([DOCKER, "run", "--rm", "-i", "busybox", "cat"], input="piped\n", text=True,
                               capture_output=True, timeout=60,
                               env={**os.environ, "DOCKER_HOST": server.docker_host,
                                    "DOCKER_CONFIG": server.docker_config}, check=False)
        assert piped.stdout == "piped\n"
        cid = server.docker("run", "-d", "busybox", "sh", "-c", "echo logged; sleep 100").stdout.strip()
        assert cid in daemon.docker("ps", "-q", "--no-trunc").stdout  # the container lives in pydockd
        time.sleep(0.3)
        assert server.docker("logs", cid).stdout == "logged\n"
        assert server.docker("rm", "-f", cid).returncode == 0
        r = requests.get(server.base + "pydock/v1.47/containers/json", timeout=10)
        assert r.status_code == 403
        assert server.docker("ps", authenticated=False).returncode != 0
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
