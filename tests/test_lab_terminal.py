"""The lab's container terminal and log view (issue 16).

The websocket behind the terminal tab is driven first as a client program
would (its protocol, authentication, resize, hang-up), then the tabs in
Debian's chromium through playwright against a real Jupyter server with the
pydock extension; screenshots go to artifacts/.
"""
from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
import urllib.parse
from collections.abc import Iterator

import pytest
import requests
import tornado.httpclient
import tornado.websocket
from conftest import Daemon
from test_jupyter_server import TOKEN, JupyterServer, jupyter  # noqa: F401  (jupyter is a fixture)

Message = str | bytes | None


class Terminal:
    """A client of `<base_url>/pydock/lab/terminal/<container>`, collecting the screen's bytes."""

    def __init__(self, conn: tornado.websocket.WebSocketClientConnection) -> None:
        self.conn = conn
        self.output = b""
        self.control: list[dict] = []

    @classmethod
    async def open(cls, lab: JupyterServer, container: str, cmd: str = "", rows: int = 24, cols: int = 80,
                   token: str = TOKEN) -> Terminal:
        query = urllib.parse.urlencode({"rows": rows, "cols": cols, **({"cmd": cmd} if cmd else {})})
        url = f"ws://127.0.0.1:{lab.port}/jp/pydock/lab/terminal/{container}?{query}"
        req = tornado.httpclient.HTTPRequest(url, headers={"Authorization": f"token {token}"})
        return cls(await tornado.websocket.websocket_connect(req))

    async def send(self, keys: str) -> None:
        await self.conn.write_message(keys.encode(), binary=True)

    async def resize(self, rows: int, cols: int) -> None:
        await self.conn.write_message(json.dumps({"resize": [rows, cols]}))

    async def expect(self, text: str, timeout: float = 20) -> None:
        """Read until `text` has been output (or the socket closed, which fails)."""
        deadline = time.monotonic() + timeout
        while text.encode() not in self.output:
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} not in {self.output[-2000:]!r}"
            msg = await asyncio.wait_for(self.conn.read_message(), left)
            assert msg is not None, f"closed before {text!r}: {self.output[-2000:]!r} {self.control}"
            self._take(msg)

    async def until_closed(self, timeout: float = 20) -> None:
        while (msg := await asyncio.wait_for(self.conn.read_message(), timeout)) is not None:
            self._take(msg)

    def _take(self, msg: str | bytes) -> None:
        if isinstance(msg, bytes):
            self.output += msg
        else:
            self.control.append(json.loads(msg))


def exec_ids(lab: JupyterServer | Daemon, name: str) -> list[str]:
    out = lab.docker("inspect", "-f", "{{json .ExecIDs}}", name)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout) or []


def exec_running(lab: JupyterServer, exec_id: str) -> bool:
    """An exec's Running, through the API as docker-py would ask."""
    r = requests.get(f"{lab.base}pydock/v1.47/exec/{exec_id}/json", headers={"Authorization": f"token {TOKEN}"},
                     timeout=10)
    assert r.status_code == 200, r.text
    return bool(r.json()["Running"])


def top_commands(lab: JupyterServer, name: str) -> list[str]:
    out = lab.docker("top", name, "-o", "pid,args")
    assert out.returncode == 0, out.stderr
    return [line.split(None, 1)[1] for line in out.stdout.splitlines()[1:] if len(line.split(None, 1)) > 1]


@pytest.fixture(scope="module")
def proxy_lab(daemon: Daemon, busybox: str) -> Iterator[JupyterServer]:
    """A Jupyter server forwarding to the session's pydockd (`PydockExtension.daemon_socket`)."""
    root = tempfile.mkdtemp(prefix="pydock-jpt-", dir="/tmp")
    server = JupyterServer(root, (f"--PydockExtension.daemon_socket={daemon.socket}",))
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["in-process", "proxy"])
def lab(request: pytest.FixtureRequest) -> JupyterServer:
    """Each terminal test against the engine inside Jupyter and against a pydockd Jupyter forwards to."""
    return request.getfixturevalue("jupyter" if request.param == "in-process" else "proxy_lab")


@pytest.fixture
def box(lab: JupyterServer) -> Iterator[str]:
    name = "lab-term-box"
    lab.docker("rm", "-f", name)
    out = lab.docker("run", "-d", "--name", name, "busybox", "sleep", "1000")
    assert out.returncode == 0, out.stderr
    yield name
    lab.docker("rm", "-f", name)


def test_terminal_socket_runs_a_tty_shell(lab: JupyterServer, box: str) -> None:
    async def session() -> None:
        term = await Terminal.open(lab, box, rows=30, cols=100)
        await term.expect("# ")  # busybox has no bash: the default picks sh, with a prompt as on a TTY
        await term.send("stty size; tty\r")
        await term.expect("30 100")
        await term.expect("/dev/pts/")
        await term.resize(40, 120)
        await term.send("stty size\r")
        await term.expect("40 120")
        await term.send("exit 7\r")
        await term.until_closed()
        assert term.control == [{"exit": 7}]
    asyncio.run(session())


def test_closing_the_terminal_ends_its_processes(lab: JupyterServer, box: str) -> None:
    async def session() -> None:
        term = await Terminal.open(lab, box)
        await term.expect("# ")
        # a foreground program that ignores the hangup, and a background job
        await term.send("sleep 4242 & trap '' HUP; exec sleep 4343\r")
        deadline = time.monotonic() + 20
        while not {"sleep 4242", "sleep 4343"} <= set(top_commands(lab, box)):
            assert time.monotonic() < deadline, top_commands(lab, box)
            await asyncio.sleep(0.2)
        [exec_id] = exec_ids(lab, box)
        assert exec_running(lab, exec_id)
        term.conn.close()
        deadline = time.monotonic() + 20
        while exec_running(lab, exec_id) or any("4242" in c or "4343" in c for c in top_commands(lab, box)):
            assert time.monotonic() < deadline, top_commands(lab, box)
            await asyncio.sleep(0.2)
    asyncio.run(session())


def test_terminal_command_and_errors(lab: JupyterServer, box: str) -> None:
    async def session() -> None:
        term = await Terminal.open(lab, box, cmd="sh -c 'echo picked $0; exit 3'")
        await term.until_closed()
        assert b"picked sh" in term.output and term.control == [{"exit": 3}]

        missing = await Terminal.open(lab, "no-such-container")
        await missing.until_closed()
        assert missing.control == [{"error": "No such container: no-such-container"}]

        absent = await Terminal.open(lab, box, cmd="no-such-program")
        await absent.until_closed()
        assert b"no-such-program" in absent.output  # the runtime's own message, as docker exec -it shows it
        assert absent.control == [{"exit": 127}]
    asyncio.run(session())


def test_terminal_needs_jupyter_auth(lab: JupyterServer, box: str) -> None:
    async def refused(**kwargs: str) -> int:
        with pytest.raises(tornado.httpclient.HTTPClientError) as e:
            await Terminal.open(lab, box, **kwargs)
        return e.value.code

    # a browser logged in to Jupyter sends its login cookie along to any site's websocket: the Origin decides
    login = requests.Session()
    assert login.get(f"{lab.base}lab?token={TOKEN}", timeout=30).status_code == 200
    cookie = "; ".join(f"{c.name}={c.value}" for c in login.cookies)

    async def with_cookie(origin: str) -> int:
        url = f"ws://127.0.0.1:{lab.port}/jp/pydock/lab/terminal/{box}?cmd=true"
        req = tornado.httpclient.HTTPRequest(url, headers={"Cookie": cookie, "Origin": origin})
        try:
            conn = await tornado.websocket.websocket_connect(req)
        except tornado.httpclient.HTTPClientError as e:
            return e.code
        while await conn.read_message() is not None:
            pass
        return 101

    assert asyncio.run(refused(token="wrong")) == 403
    assert asyncio.run(with_cookie("http://evil.example")) == 403
    assert exec_ids(lab, box) == []  # nothing was started for them
    assert asyncio.run(with_cookie(f"http://127.0.0.1:{lab.port}")) == 101


def test_terminal_keeps_the_host_policy(proxy_lab: JupyterServer, daemon: Daemon, busybox: str) -> None:
    """A container made with host access (straight through pydockd) takes no terminal through Jupyter,
    as it takes no `docker exec` there."""
    name = "lab-term-privileged"
    daemon.docker("rm", "-f", name)
    daemon.docker("run", "-d", "--privileged", "--name", name, "busybox", "sleep", "1000", check=True)
    try:
        refused = proxy_lab.docker("exec", name, "true")
        assert refused.returncode != 0

        async def session() -> Terminal:
            term = await Terminal.open(proxy_lab, name)
            await term.until_closed()
            return term
        term = asyncio.run(session())
        assert term.control == [{"error": refused.stderr.strip().removeprefix("Error response from daemon: ")}]
        assert exec_ids(daemon, name) == []
    finally:
        daemon.docker("rm", "-f", name)
