"""The magics end to end as a non-root Jupyter user: server, kernel and engine all run as that user.

A throwaway user starts `jupyter server` with the extension and nothing else: the server starts the user's
rootless pydockd and hands its kernels DOCKER_HOST. A notebook session's kernel (ipykernel, as the user) then
drives the user's engine through %docker, %%dockerfile and %%container; this process only connects to the
kernel (nbclient, through the connection file the server wrote) and checks the results with the docker CLI.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
import requests
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from test_rootless import DISTRIBUTIONS, SYSTEM_PYTHON, TOOLS, User, _add_user, _readable_environment, _remove_user

from engine.linux.proc import running as process_running

pytestmark = [
    pytest.mark.rootless,
    pytest.mark.skipif(os.geteuid() != 0, reason="creating users needs root"),
    pytest.mark.skipif(not all(shutil.which(t) for t in TOOLS) or not os.path.exists(SYSTEM_PYTHON),
                       reason=f"needs {', '.join(TOOLS)} and {SYSTEM_PYTHON}"),
]


class ServerKernel(AsyncKernelManager):
    """A kernel the user's Jupyter server started and owns; this process only connects to it."""

    @property
    def has_kernel(self) -> bool:
        return True


class UserServer:
    """`jupyter server` with the pydock extension, run as `user` in its home directory."""

    def __init__(self, user: User) -> None:
        self.user = user
        self.token = uuid.uuid4().hex
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}/"
        self.log = os.path.join(user.env_root, f"{user.name}-jupyter.log")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                user.argv(SYSTEM_PYTHON, "-m", "jupyter_server", "--no-browser", f"--ServerApp.port={self.port}",
                          "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={self.token}",
                          "--ServerApp.jpserver_extensions={'pydock_ext': True}"),
                env=user.env(), cwd=user.pw.pw_dir, stdout=log, stderr=log, start_new_session=True)
        deadline = time.time() + 90
        while user.docker("version").returncode != 0:  # the server starts the user's pydockd
            assert self.proc.poll() is None and time.time() < deadline, Path(self.log).read_text()[-3000:]
            time.sleep(0.5)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def run(self, path: str, *sources: str) -> Any:
        """Execute `sources` as the cells of a notebook at `path` (relative to the user's home) in a new session's
        kernel; returns the executed notebook."""
        r = requests.post(self.base + "api/sessions", headers=self.auth, timeout=60,
                          json={"path": path, "name": os.path.basename(path), "type": "notebook",
                                "kernel": {"name": "python3"}})
        r.raise_for_status()
        session, kernel_id = r.json()["id"], r.json()["kernel"]["id"]
        try:
            runtime = Path(self.user.pw.pw_dir, ".local", "share", "jupyter", "runtime")
            km = ServerKernel(owns_kernel=False, connection_file=str(runtime / f"kernel-{kernel_id}.json"))
            km.load_connection_file()
            nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
            NotebookClient(nb, km=km, timeout=180, allow_errors=False).execute()
            return nb
        finally:
            requests.delete(self.base + f"api/sessions/{session}", headers=self.auth, timeout=60)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def text(cell: Any) -> str:
    """What a cell showed: its streams and results."""
    return "".join(o["text"] if o["output_type"] == "stream" else o.get("data", {}).get("text/plain", "")
                   for o in cell.get("outputs", []))


@pytest.fixture(scope="module")
def user_server(busybox_tar: str) -> Iterator[tuple[User, UserServer]]:
    """A user (subordinate IDs) whose Jupyter server runs and started its pydockd, busybox imported there."""
    version = subprocess.run([SYSTEM_PYTHON, "--version"], capture_output=True, text=True, check=False).stdout
    if f"{sys.version_info.major}.{sys.version_info.minor}" not in version:
        pytest.skip("the system Python's minor version differs: the copied extension modules would not load")
    env_root = tempfile.mkdtemp(prefix="pydock-rootless-jp-")
    os.chmod(env_root, 0o755)
    _readable_environment(Path(env_root), [*DISTRIBUTIONS, "ipykernel", "ipython", "ipywidgets", "docker"])
    name = f"pdjp{uuid.uuid4().hex[:6]}"
    user: User | None = None
    server: UserServer | None = None
    try:
        _add_user(name, True)
        user = User(name, env_root)
        work = Path(user.pw.pw_dir, "work")
        work.mkdir()
        (work / "note.txt").write_text("from the notebook's directory\n")
        subprocess.run(["chown", "-R", f"{user.uid}:{user.pw.pw_gid}", str(work)], check=True)
        server = UserServer(user)
        user.docker("import", "-c", 'CMD ["sh"]', "-", "busybox:latest", input=Path(busybox_tar).read_bytes(),
                    check=True)
        yield user, server
    finally:
        if server is not None:
            server.stop()
        if user is not None:
            _stop_daemon(user)
            _remove_user(user)
        subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)
        shutil.rmtree(env_root, ignore_errors=True)


def _stop_daemon(user: User) -> None:
    """End the pydockd the server started (named in the data root's lock), as a user's logout would not."""
    try:
        pid = int(Path(user.data_root, "pydock.lock").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + 30
    while process_running(pid) and time.time() < deadline:
        time.sleep(0.1)


def test_the_kernel_runs_as_the_user_against_its_rootless_engine(user_server: tuple[User, UserServer]) -> None:
    user, server = user_server
    nb = server.run("work/probe.ipynb",
                    "import os\nprint(os.getuid(), os.environ['DOCKER_HOST'])",
                    "%load_ext pydock_ext\n%docker info --format '{{json .SecurityOptions}}'")
    assert text(nb.cells[0]).split() == [str(user.uid), f"unix://{user.socket}"]
    assert "name=rootless" in json.loads(text(nb.cells[1]))


def test_magics_through_the_lifecycle(user_server: tuple[User, UserServer]) -> None:
    """%docker run/ps/logs/stop/rm, %%dockerfile (the notebook's directory as context) and %%container, each
    checked from outside with the docker CLI against the user's engine."""
    user, server = user_server
    try:
        nb = server.run(
            "work/magics.ipynb",
            "%load_ext pydock_ext",
            "out = %docker run --rm busybox sh -c 'echo hi from a rootless run; id -u'",
            "cid = %docker run -d --name jp-sleeper busybox sh -c 'echo started; exec sleep 300'\n"
            "names = %docker ps --format '{{.Names}}'\nprint('jp-sleeper' in names)",
            "%%dockerfile jp-built:1\nFROM busybox\nCOPY note.txt /note.txt\nRUN echo built-in-a-notebook > /made\n"
            'CMD ["cat", "/note.txt", "/made"]',
            "%docker run --rm jp-built:1",
            "%%container busybox --out answer\necho from the container cell; answer=$(id -u); echo $answer",
            "print(repr(answer))",
            "%docker logs jp-sleeper\n%docker stop -t 1 jp-sleeper\n"
            "%docker inspect -f '{{.State.Status}}' jp-sleeper",
        )
        assert text(nb.cells[1]) == "hi from a rootless run\n0\n"
        assert text(nb.cells[2]) == "jp-sleeper\nTrue\n"  # what `docker ps` prints, then the cell's check
        assert text(nb.cells[4]) == "from the notebook's directory\nbuilt-in-a-notebook\n"
        assert text(nb.cells[5]) == "from the container cell\n0\n"
        assert text(nb.cells[6]) == "0\n"  # handed back as JSON: root in the container
        assert text(nb.cells[7]) == "started\njp-sleeper\nexited\n"  # logs, stop's echo of the name, inspect
        # the same engine, seen by the docker CLI as the user
        assert user.docker("run", "--rm", "jp-built:1", check=True).stdout == \
            "from the notebook's directory\nbuilt-in-a-notebook\n"
        assert user.docker("inspect", "-f", "{{.State.Status}}", "jp-sleeper", check=True).stdout == "exited\n"
        nb = server.run("work/cleanup.ipynb", "%load_ext pydock_ext", "%docker rm jp-sleeper\n%docker rmi jp-built:1")
        assert "jp-sleeper" not in user.docker("ps", "-a", "--format", "{{.Names}}", check=True).stdout
        assert user.docker("image", "inspect", "jp-built:1").returncode != 0
    finally:
        user.docker("rm", "-f", "jp-sleeper")
        user.docker("rmi", "jp-built:1")
