"""The example notebooks, executed end to end on a kernel that a real Jupyter server started.

The tests give the server no engine address: the server hands its kernels
and terminals DOCKER_HOST (a private unix socket of its engine), or (with that
turned off) the magics find the server that owns the kernel. nbclient
drives the kernel through its connection file.
"""
from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from typing import Any

import nbformat
import pytest
import requests
from conftest import REPO
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from test_jupyter_server import TOKEN, JupyterServer, own_server
from test_registry import OCI_GZIP, Registry, start_registry, stop_registry, tar_of

from pydock_cli.main import main
from pydock_ext.connection import Endpoint, find_endpoint

AUTH = {"Authorization": f"token {TOKEN}"}
NOTEBOOKS = os.path.join(REPO, "notebooks")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A Distribution registry on loopback to pull from (no registry on the internet is reachable)."""
    reg = start_registry(str(tmp_path_factory.mktemp("registry")))
    yield reg
    stop_registry(reg)


class ServerKernel(AsyncKernelManager):
    """A kernel the Jupyter server started and owns; this process only connects to it."""

    @property
    def has_kernel(self) -> bool:
        return True


@pytest.fixture(scope="module")
def server() -> Iterator[JupyterServer]:
    with own_server("pydock-nb-") as jp:
        yield jp


class Session:
    """A notebook session opened through the server's REST API, as JupyterLab opens one."""

    def __init__(self, server: JupyterServer, name: str) -> None:
        self.server = server
        r = requests.post(server.base + "api/sessions", headers=AUTH, timeout=60,
                          json={"path": f"work/{name}", "name": name, "type": "notebook", "kernel": {"name": "python3"}})
        r.raise_for_status()
        self.id = r.json()["id"]
        self.kernel_id = r.json()["kernel"]["id"]

    def run(self, nb: Any, timeout: int = 180) -> Any:
        km = ServerKernel(owns_kernel=False, connection_file=os.path.join(
            self.server.root, "runtime", f"kernel-{self.kernel_id}.json"))
        km.load_connection_file()
        NotebookClient(nb, km=km, timeout=timeout, allow_errors=False).execute()
        return nb

    def close(self) -> None:
        requests.delete(self.server.base + f"api/sessions/{self.id}", headers=AUTH, timeout=60)


def execute(server: JupyterServer, name: str, nb: Any | None = None) -> Any:
    if nb is None:
        shutil.copy(os.path.join(NOTEBOOKS, name), os.path.join(server.root, "work", name))
        nb = nbformat.read(os.path.join(NOTEBOOKS, name), as_version=4)
    session = Session(server, name)
    try:
        return session.run(nb)
    finally:
        session.close()


def code(*sources: str) -> Any:
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])


def text(cell: Any) -> str:
    """Everything a cell showed: streams, results, and widget fallbacks."""
    parts = []
    for out in cell.get("outputs", []):
        if out["output_type"] == "stream":
            parts.append(out["text"])
        elif "data" in out:
            parts.append(out["data"].get("text/plain", ""))
    return "".join(parts)


def cells(nb: Any) -> dict[str, Any]:
    return {c["id"]: c for c in nb.cells}


def widget_states(nb: Any) -> list[dict[str, Any]]:
    """The final state of every widget model, as nbclient recorded it from the kernel's comm messages."""
    models = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    return [m["state"] for m in models.values()]


def test_kernel_gets_its_servers_engine(server):
    nb = execute(server, "probe.ipynb", code(
        "from pydock_ext.connection import find_endpoint\ne = find_endpoint()\nprint(e.host)\nprint(sorted(e.headers))",
        "%load_ext pydock_ext\n%docker version --format '{{.Server.Os}}'"))
    host, headers = text(nb.cells[0]).splitlines()
    assert host.startswith(f"unix://{server.root}/runtime/pydock-") and host.endswith("/engine.sock")
    assert headers == "[]"  # no token: the socket's directory is the server user's alone
    assert text(nb.cells[1]) == "linux\n"


def test_bang_docker_and_the_sdk_in_a_kernel_reach_the_engine(server):
    """`!docker ...` and docker.from_env() with no setup (they failed with "Cannot connect to the Docker daemon")."""
    nb = execute(server, "bang.ipynb", code(
        "!docker ps -a",
        "import docker\nclient = docker.from_env()\nprint(client.version()['Os'], len(client.containers.list(all=True)) >= 0)",
        "import os, stat\nd = os.path.dirname(os.environ['DOCKER_HOST'][len('unix://'):])\n"
        "print(oct(stat.S_IMODE(os.stat(d).st_mode)), os.environ['PYDOCK_PROXY_URL'])"))
    assert text(nb.cells[0]).startswith("CONTAINER ID")
    assert text(nb.cells[1]) == "linux True\n"
    assert text(nb.cells[2]) == "0o700 /jp/pydock/proxy/\n"  # and where container web apps are reached


def test_a_terminal_reaches_the_engine(server):
    """`docker` typed in a Jupyter terminal, over the terminal's websocket as JupyterLab sends keys."""
    import asyncio
    import json as _json

    import tornado.websocket
    r = requests.post(server.base + "api/terminals", headers=AUTH, timeout=30)
    r.raise_for_status()
    name = r.json()["name"]

    async def session() -> str:
        url = server.base.replace("http", "ws") + f"terminals/websocket/{name}?token={TOKEN}"
        ws = await tornado.websocket.websocket_connect(url)
        await ws.write_message(_json.dumps(["stdin", "docker version --format 'engine-{{.Server.Os}}'\r"]))
        seen = ""
        while "engine-linux" not in seen:
            msg = await asyncio.wait_for(ws.read_message(), 30)
            assert msg is not None, seen
            kind, *data = _json.loads(msg)
            seen += "".join(str(d) for d in data) if kind == "stdout" else ""
        ws.close()
        return seen

    try:
        assert "engine-linux" in asyncio.run(session())
    finally:
        requests.delete(server.base + f"api/terminals/{name}", headers=AUTH, timeout=30)


def test_kernel_finds_its_server_without_docker_host(tmp_path):
    """With export_docker_host off, the magics find the server that owns the kernel (and its token) themselves."""
    with own_server("pydock-nb2-", ("--PydockExtension.export_docker_host=False",)) as jp:
        nb = execute(jp, "probe.ipynb", code(
            "import os\nfrom pydock_ext.connection import find_endpoint\ne = find_endpoint()\n"
            "print(e.host, 'DOCKER_HOST' in os.environ)\nprint(sorted(e.headers))",
            "%load_ext pydock_ext\n%docker version --format '{{.Server.Os}}'"))
        assert text(nb.cells[0]) == f"{jp.base}pydock False\n['Authorization']\n"
        assert text(nb.cells[1]) == "linux\n"


def test_a_kernel_with_no_engine_says_so(tmp_path):
    """A kernel no pydock server started (nbconvert --execute, say), with no DOCKER_HOST: one clear line."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYDOCK_HOST", "DOCKER_HOST", "DOCKER_CONFIG")}
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "runtime")
    nb = code("%load_ext pydock_ext\ntry:\n    %docker ps\nexcept Exception as e:\n    print(type(e).__name__, e)")
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}},
                   env=env).execute()
    out = text(nb.cells[0])
    assert out.startswith("EngineNotFound no pydock engine for this kernel") and "set DOCKER_HOST" in out


def test_kernel_token_is_required(server):
    """The same API without the server's token is refused, from the kernel and from the widgets alike."""
    host = server.base + "pydock"
    nb = execute(server, "noauth.ipynb", code(
        f"%load_ext pydock_ext\ntry:\n    %docker -H {host} ps\nexcept Exception as e:\n    print(type(e).__name__)",
        "import docker\nfrom pydock_ext.connection import Endpoint\nfrom pydock_ext.widgets import Containers\n"
        "for headers in ({}, {'Authorization': 'token wrong'}):\n"
        f"    try:\n        Containers(Endpoint({host!r}, headers))\n"
        "    except docker.errors.APIError as e:\n        print(e.status_code)"))
    out = text(nb.cells[0])
    assert "Error response from daemon:" in out and "DockerError\n" in out
    assert text(nb.cells[1]) == "403\n403\n"


def test_explicit_host_takes_its_token_from_the_docker_config(server, monkeypatch, capsys):
    """PYDOCK_HOST at Jupyter's /pydock: the CLI and the widgets send the config's HttpHeaders, as docker does."""
    monkeypatch.setenv("PYDOCK_HOST", server.base + "pydock")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    monkeypatch.setenv("DOCKER_CONFIG", server.docker_config)
    endpoint = find_endpoint()
    assert endpoint == Endpoint(server.base + "pydock", AUTH)
    assert main(["version", "--format", "{{.Server.Os}}"]) == 0
    assert capsys.readouterr().out == "linux\n"
    monkeypatch.setenv("DOCKER_CONFIG", os.path.join(server.root, "no-config"))
    assert find_endpoint().headers == {}
    assert main(["ps"]) == 1
    assert "Error response from daemon" in capsys.readouterr().err


def test_getting_started_notebook(server):
    executed = execute(server, "getting_started.ipynb")
    nb = cells(executed)
    assert "busybox" in text(nb["base"])
    assert text(nb["run-hello"]) == "hello from a container\n"
    assert text(nb["logs"]) == "tick 1\ntick 2\ntick 3\n"
    assert text(nb["exec"]).startswith("inside ")
    assert "summing [3, 4, 5]" in text(nb["container"]) and text(nb["total"]) == "12"
    assert "exit code 3" in text(nb["container-fail"])
    assert "BuildProgress" in text(nb["build"])
    states = widget_states(executed)
    assert any("Successfully tagged gs-hello:latest" in str(st.get("value")) for st in states)
    assert any(st.get("description") == "Step 3/3" and st.get("bar_style") == "success" for st in states)
    assert text(nb["run-built"]) == "built by %%dockerfile\n"
    assert text(nb["rows"]) == "('exited', ['/gs-box', '/gs-ticker'])"
    assert server.docker("ps", "-aq").stdout == ""


def _engine_lacks(server: JupyterServer, method: str, path: str, body: Any = None) -> str:
    r = requests.request(method, server.base + "pydock/v1.47" + path, headers=AUTH, json=body, timeout=30)
    return r.json().get("message", "") if r.status_code == 501 else ""


def test_multi_container_notebook(server):
    for method, path, body in [("GET", "/networks", None), ("GET", "/volumes", None)]:
        missing = _engine_lacks(server, method, path, body)
        if missing:
            pytest.skip(f"engine answers 501 for {method} {path}: {missing}")
    nb = cells(execute(server, "multi_container.ipynb"))
    assert "mc-web" in text(nb["web"])
    assert text(nb["peer"]) == "hello from a volume\n"
    assert text(nb["kernel"]) == "hello from a volume\n"
    assert server.docker("ps", "-aq").stdout == ""


def test_pull_shows_layer_progress(server, registry):
    """`%docker pull` in a notebook draws one bar per layer, filled when the layer is complete."""
    import gzip
    layers = [tar_of({f"layer{i}.txt": os.urandom(100_000)}) for i in range(2)]
    registry.push_image("nb/app", "1", [(plain, gzip.compress(plain), OCI_GZIP) for plain in layers])
    executed = execute(server, "pull.ipynb", code(
        f"%load_ext pydock_ext\n%docker pull {registry.host}/nb/app:1",
        f"try:\n    %docker pull {registry.host}/nb/missing:1\nexcept Exception as e:\n    print(type(e).__name__)"))
    states = widget_states(executed)
    bars = [st for st in states if st.get("_model_name") == "IntProgressModel"]
    assert len(bars) == 2 and all(b["value"] == b["max"] > 1 and b["bar_style"] == "success" for b in bars)
    assert any(f"Downloaded newer image for {registry.host}/nb/app:1" in str(st.get("value")) for st in states)
    assert "manifest unknown" in text(executed.cells[1]) and "DockerError\n" in text(executed.cells[1])
    assert server.docker("image", "inspect", f"{registry.host}/nb/app:1").returncode == 0


def test_docker_build_shows_step_progress(server, busybox_tar):
    """`%docker build` in a notebook: the CLI's build output drives a step bar instead of scrolling by."""
    server.docker("import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:latest")
    ctx = os.path.join(server.root, "work", "ctx")
    os.makedirs(ctx, exist_ok=True)
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write("FROM busybox\nRUN echo built > /built\nCMD [\"cat\", \"/built\"]\n")
    executed = execute(server, "build.ipynb", code(
        "%load_ext pydock_ext\n%docker build -t nb-cli-built:1 ctx", "%docker run --rm nb-cli-built:1"))
    states = widget_states(executed)
    assert "BuildProgress" in text(executed.cells[0])
    assert any(st.get("description") == "Step 3/3" and st.get("bar_style") == "success" for st in states)
    assert any("Successfully tagged nb-cli-built:1" in str(st.get("value")) for st in states)
    assert text(executed.cells[1]) == "built\n"


def test_kernel_in_image_notebook(server):
    nb = cells(execute(server, "kernel_in_image.ipynb"))
    assert "Installed kernelspec nb-python-kernel" in text(nb["add"])
    lines = text(nb["start"]).splitlines()
    assert lines[0].startswith("kernel host: ") and lines[1].startswith("PRETTY_NAME=")
    assert text(nb["where"]) == "True True\n"
    assert "nb-python-kernel:1" in text(nb["containers"])
    assert server.docker("ps", "-aq", "--filter", "label=io.pydock.kernel").stdout == ""


def test_database_service_notebook(server):
    nb = cells(execute(server, "database_service.ipynb"))
    assert text(nb["client"]) == "['OK', 'hello from a volume']\n"
    assert text(nb["restart"]).endswith("['hello from a volume']\n")
    assert "nb-kv" not in server.docker("ps", "-a").stdout


def test_web_app_notebook(server):
    nb = cells(execute(server, "web_app.ipynb"))
    url = text(nb["link"]).splitlines()[0]
    assert url == "/jp/pydock/proxy/nb-web/80/"
    assert "nb-web" not in server.docker("ps", "-a").stdout  # the notebook cleans up: run the app again to fetch
    server.docker("run", "-d", "--name", "nb-web", "-p", "127.0.0.1::80", "busybox", "sh", "-c",
                  "mkdir -p /www && echo '<h1>Hello from a container</h1>' > /www/index.html && httpd -f -p 80 -h /www")
    try:
        deadline = time.time() + 30
        while (r := requests.get(server.base.rstrip("/").rsplit("/jp", 1)[0] + url, headers=AUTH,
                                 timeout=10)).status_code == 502 and time.time() < deadline:
            time.sleep(0.2)
        assert r.status_code == 200 and r.text == "<h1>Hello from a container</h1>\n"
    finally:
        server.docker("rm", "-f", "nb-web")


def test_compose_app_notebook(server):
    nb = cells(execute(server, "compose_app.ipynb"))
    assert "Creating nbapp_web_1" in text(nb["up"])
    assert "nbapp_client_1" in text(nb["ps"])
    assert text(nb["peer"]) == "hello from compose\n"
    assert "Removing nbapp_web_1" in text(nb["down"])
