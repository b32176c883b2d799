"""The lab's container terminal and log view (issue 16).

The websocket behind the terminal tab is driven first as a client program
would (its protocol, authentication, resize, hang-up), then the tabs in
Debian's chromium through playwright against a real Jupyter server with the
pydock extension; screenshots go to artifacts/.
"""
from __future__ import annotations

import asyncio
import json
import re
import shutil
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests
import tornado.httpclient
import tornado.websocket
from conftest import Daemon
from playwright.sync_api import Locator, Page
from test_jupyter_server import TOKEN, JupyterServer, jupyter  # noqa: F401  (jupyter is a fixture)
from test_labextension import lab, lab_settings, page, screenshot, show_panel  # noqa: F401  (fixtures: lab, lab_settings, page)


class Terminal:
    """A client of `<base_url>/pydock/lab/terminal/<container>`, collecting the screen's bytes."""

    def __init__(self, conn: tornado.websocket.WebSocketClientConnection) -> None:
        self.conn = conn
        self.output = b""
        self.control: list[dict] = []

    @classmethod
    async def open(cls, server: JupyterServer, container: str, cmd: str = "", rows: int = 24, cols: int = 80,
                   token: str = TOKEN) -> Terminal:
        query = urllib.parse.urlencode({"rows": rows, "cols": cols, **({"cmd": cmd} if cmd else {})})
        url = f"ws://127.0.0.1:{server.port}/jp/pydock/lab/terminal/{container}?{query}"
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


def exec_ids(server: JupyterServer | Daemon, name: str) -> list[str]:
    out = server.docker("inspect", "-f", "{{json .ExecIDs}}", name)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout) or []


def exec_running(server: JupyterServer, exec_id: str) -> bool:
    """An exec's Running, through the API as docker-py would ask."""
    r = requests.get(f"{server.base}pydock/v1.47/exec/{exec_id}/json", headers={"Authorization": f"token {TOKEN}"},
                     timeout=10)
    assert r.status_code == 200, r.text
    return bool(r.json()["Running"])


def top_commands(server: JupyterServer, name: str) -> list[str]:
    out = server.docker("top", name, "-o", "pid,args")
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
def server(request: pytest.FixtureRequest) -> JupyterServer:
    """Each terminal test against the engine inside Jupyter and against a pydockd Jupyter forwards to.

    The in-process one is the browser tests' `lab` (its JupyterLab settings are made before it starts)."""
    return request.getfixturevalue("lab" if request.param == "in-process" else "proxy_lab")


@pytest.fixture
def box(server: JupyterServer) -> Iterator[str]:
    name = "lab-term-box"
    server.docker("rm", "-f", name)
    out = server.docker("run", "-d", "--name", name, "busybox", "sleep", "1000")
    assert out.returncode == 0, out.stderr
    yield name
    server.docker("rm", "-f", name)


def test_terminal_socket_runs_a_tty_shell(server: JupyterServer, box: str) -> None:
    async def session() -> None:
        term = await Terminal.open(server, box, rows=30, cols=100)
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


def test_closing_the_terminal_ends_its_processes(server: JupyterServer, box: str) -> None:
    async def session() -> None:
        term = await Terminal.open(server, box)
        await term.expect("# ")
        # a foreground program that ignores the hangup, and a background job
        await term.send("sleep 4242 & trap '' HUP; exec sleep 4343\r")
        deadline = time.monotonic() + 20
        while not {"sleep 4242", "sleep 4343"} <= set(top_commands(server, box)):
            assert time.monotonic() < deadline, top_commands(server, box)
            await asyncio.sleep(0.2)
        [exec_id] = exec_ids(server, box)
        assert exec_running(server, exec_id)
        term.conn.close()
        deadline = time.monotonic() + 20
        while exec_running(server, exec_id) or any("4242" in c or "4343" in c for c in top_commands(server, box)):
            assert time.monotonic() < deadline, top_commands(server, box)
            await asyncio.sleep(0.2)
    asyncio.run(session())


def test_terminal_command_and_errors(server: JupyterServer, box: str) -> None:
    async def session() -> None:
        term = await Terminal.open(server, box, cmd="sh -c 'echo picked $0; exit 3'")
        await term.until_closed()
        assert b"picked sh" in term.output and term.control == [{"exit": 3}]

        missing = await Terminal.open(server, "no-such-container")
        await missing.until_closed()
        assert missing.control == [{"error": "No such container: no-such-container"}]

        absent = await Terminal.open(server, box, cmd="no-such-program")
        await absent.until_closed()
        assert b"no-such-program" in absent.output  # the runtime's own message, as docker exec -it shows it
        assert absent.control == [{"exit": 127}]

        # the container removed under an open terminal: the terminal ends, saying how
        term = await Terminal.open(server, box)
        await term.expect("# ")
        assert server.docker("rm", "-f", box).returncode == 0
        await term.until_closed()
        assert len(term.control) == 1 and ("error" in term.control[0] or term.control[0]["exit"] == 137), term.control
    asyncio.run(session())


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_a_flooding_terminal_blocks_nothing(lab: JupyterServer) -> None:  # noqa: F811
    """Output the browser does not take waits in the container (backpressure), not in the server's memory,
    and the server goes on answering meanwhile."""
    name = "lab-term-flood"
    lab.docker("rm", "-f", name)
    assert lab.docker("run", "-d", "--name", name, "busybox", "sleep", "1000").returncode == 0
    assert lab.proc is not None

    async def session() -> None:
        term = await Terminal.open(lab, name, cmd="yes 0123456789abcdef0123456789abcdef")
        before = _rss_kib(lab.proc.pid)
        await asyncio.sleep(4)  # nothing read meanwhile
        slowest = 0.0
        for _ in range(5):
            started = time.monotonic()
            r = await asyncio.get_running_loop().run_in_executor(None, lambda: requests.get(
                f"{lab.base}pydock/_ping", headers={"Authorization": f"token {TOKEN}"}, timeout=10))
            assert r.status_code == 200
            slowest = max(slowest, time.monotonic() - started)
        assert slowest < 2, slowest
        # KiB: the pipe's worth, not the tens of megabytes a server that does not wait for the browser buffers
        assert _rss_kib(lab.proc.pid) - before < 16 * 1024
        await term.expect("0123456789abcdef")  # and the output flows once read
        term.conn.close()
    try:
        asyncio.run(session())
    finally:
        lab.docker("rm", "-f", name)


def test_terminal_needs_jupyter_auth(server: JupyterServer, box: str) -> None:
    async def refused(**kwargs: str) -> int:
        with pytest.raises(tornado.httpclient.HTTPClientError) as e:
            await Terminal.open(server, box, **kwargs)
        return e.value.code

    # a browser logged in to Jupyter sends its login cookie along to any site's websocket: the Origin decides
    login = requests.Session()
    assert login.get(f"{server.base}lab?token={TOKEN}", timeout=30).status_code == 200
    cookie = "; ".join(f"{c.name}={c.value}" for c in login.cookies)

    async def with_cookie(origin: str) -> int:
        url = f"ws://127.0.0.1:{server.port}/jp/pydock/lab/terminal/{box}?cmd=true"
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
    assert exec_ids(server, box) == []  # nothing was started for them
    assert asyncio.run(with_cookie(f"http://127.0.0.1:{server.port}")) == 101


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


# ---- the terminal tab in the browser ------------------------------------------------------------------------


def open_panel(browser: Page) -> None:
    show_panel(browser)


def row_action(row: Locator, label: str) -> None:
    """Clicks a container row's action: its button, or where a narrow sidebar folds the buttons into the row's
    "Actions" menu, that menu's entry."""
    button = row.get_by_title(label, exact=True)
    if button.is_visible():
        button.click()
        return
    row.get_by_title("Actions", exact=True).click()
    row.get_by_role("menuitem", name=label, exact=True).click()


def screen(term: Locator) -> str:
    """The terminal's rendered rows, as xterm.js's DOM renderer shows them."""
    return term.locator(".xterm-rows").inner_text().replace("\xa0", " ")


def wait_screen(term: Locator, text: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while text not in (shown := screen(term)):
        assert time.monotonic() < deadline, f"{text!r} not on screen:\n{shown}"
        time.sleep(0.1)
    return shown


def type_line(browser: Page, line: str) -> None:
    browser.keyboard.type(line)
    browser.keyboard.press("Enter")


@contextmanager
def exec_terminal(server: JupyterServer, browser: Page, name: str) -> Iterator[Locator]:
    """A running busybox container `name`, the panel's Exec on its row, and the terminal tab at its
    shell's prompt, focused; the container is removed after."""
    server.docker("rm", "-f", name)
    assert server.docker("run", "-d", "--name", name, "busybox", "sleep", "1000").returncode == 0
    try:
        open_panel(browser)
        row = browser.locator(f'.jp-PydockContainer[data-name="{name}"]')
        row.and_(browser.locator('[data-state="running"]')).wait_for(timeout=30_000)
        row_action(row, "Exec")
        term = browser.locator(".jp-PydockTerminal")
        term.locator(".xterm-rows").wait_for(timeout=30_000)
        wait_screen(term, "# ")
        term.click()
        yield term
    finally:
        server.docker("rm", "-f", name)


@pytest.mark.slow
def test_terminal_tab(lab: JupyterServer, page: Page) -> None:  # noqa: F811  (fixtures)
    name = "lab-term-e2e"
    with exec_terminal(lab, page, name) as term:
        # a full-screen program, drawn with the escape codes xterm.js interprets, ended with Ctrl-C
        type_line(page, "top")
        wait_screen(term, "Mem:")
        wait_screen(term, "PID")
        screenshot(page, "lab-terminal-top.png")
        page.keyboard.press("Control+C")
        type_line(page, "clear; echo $((6 * 7))-answered")
        wait_screen(term, "42-answered")
        assert "Mem:" not in screen(term)

        # colours: red is drawn as red, not as escape codes
        type_line(page, r"printf '\033[31mRED-TEXT\033[0m\n'")
        term.locator(".xterm-fg-1", has_text="RED-TEXT").wait_for(timeout=10_000)
        assert "RED-TEXT" in [line.strip() for line in screen(term).splitlines()]  # the output line: no codes

        # vi, with Escape reaching it rather than JupyterLab
        type_line(page, "vi /tmp/from-vi")
        # vi is up once it fills the screen with its empty-line marks (its status line, which names the
        # file, may carry a message instead)
        wait_screen(term, "\n~\n~\n~\n")
        page.keyboard.type("iwritten in vi")
        page.keyboard.press("Escape")
        wait_screen(term, "written in vi")
        screenshot(page, "lab-terminal-vi.png")
        type_line(page, ":wq")
        deadline = time.monotonic() + 10
        while lab.docker("exec", name, "cat", "/tmp/from-vi").stdout.strip() != "written in vi":
            assert time.monotonic() < deadline, screen(term)
            time.sleep(0.2)

        # the tab's size is the TTY's size, and follows the tab
        type_line(page, "clear; stty size")
        before = _stty_size(term)
        page.set_viewport_size({"width": 1000, "height": 600})
        time.sleep(0.5)
        type_line(page, "clear; stty size")
        deadline = time.monotonic() + 10
        while (after := _stty_size(term)) == before:
            assert time.monotonic() < deadline, screen(term)
            time.sleep(0.2)
        assert after[0] < before[0] and after[1] < before[1], (before, after)
        screenshot(page, "lab-terminal.png")

        # a new session of another command, which ends by itself; then a shell again
        command = page.get_by_label("Command", exact=True)
        command.fill("top -d 1")
        command.press("Enter")
        wait_screen(term, "Mem:")
        page.keyboard.press("q")
        wait_screen(term, "[process exited with code 0]")
        page.locator(".jp-PydockTerminal-status", has_text="Session ended").wait_for(timeout=10_000)
        command.fill("")
        page.get_by_role("button", name="New session").click()
        wait_screen(term, "# ")
        term.click()

        # closing the tab ends the exec and everything it started
        type_line(page, "sleep 4242 &")
        deadline = time.monotonic() + 10
        while len(ids := exec_ids(lab, name)) != 1:  # the sessions before are gone
            assert time.monotonic() < deadline, ids
            time.sleep(0.2)
        [exec_id] = ids
        page.locator(".lm-TabBar-tab.jp-mod-current .lm-TabBar-tabCloseIcon").click()
        term.wait_for(state="detached", timeout=10_000)
        deadline = time.monotonic() + 20
        while exec_running(lab, exec_id) or len(top_commands(lab, name)) > 1:
            assert time.monotonic() < deadline, top_commands(lab, name)
            time.sleep(0.2)
        assert top_commands(lab, name) == ["sleep 1000"]


@pytest.mark.slow
def test_terminal_ends_with_the_browser(lab: JupyterServer, page: Page) -> None:  # noqa: F811  (fixtures)
    name = "lab-term-gone"
    with exec_terminal(lab, page, name):
        type_line(page, "sleep 4343")
        deadline = time.monotonic() + 20
        while "sleep 4343" not in top_commands(lab, name):
            assert time.monotonic() < deadline, top_commands(lab, name)
            time.sleep(0.2)
        [exec_id] = exec_ids(lab, name)
        page.close()  # the browser goes away without closing the tab
        deadline = time.monotonic() + 20
        while exec_running(lab, exec_id) or top_commands(lab, name) != ["sleep 1000"]:
            assert time.monotonic() < deadline, top_commands(lab, name)
            time.sleep(0.2)


def _stty_size(term: Locator) -> tuple[int, int]:
    """The `rows cols` line `clear; stty size` leaves at the top of the screen."""
    deadline = time.monotonic() + 10
    while True:
        for line in screen(term).splitlines():
            parts = line.split()
            if len(parts) == 2 and all(p.isdigit() for p in parts):
                return int(parts[0]), int(parts[1])
        assert time.monotonic() < deadline, screen(term)
        time.sleep(0.1)


# ---- the log tab in the browser -----------------------------------------------------------------------------

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$")


def open_logs(browser: Page, name: str) -> Locator:
    open_panel(browser)
    row = browser.locator(f'.jp-PydockContainer[data-name="{name}"]')
    row.wait_for(timeout=30_000)
    row_action(row, "Logs")
    logs = browser.locator(".jp-PydockLogs")
    logs.wait_for(timeout=30_000)
    return logs


def log_lines(logs: Locator, text: str) -> Locator:
    return logs.locator(".jp-PydockLogs-line", has_text=text)


@pytest.mark.slow
def test_log_tab_follows_restarts(lab: JupyterServer, page: Page) -> None:  # noqa: F811  (fixtures)
    name = "lab-logs-e2e"
    # each run logs its number once on each stream, then waits to be stopped
    script = ("n=$(( $(cat /tmp/runs 2>/dev/null || echo 0) + 1 )); echo $n > /tmp/runs; echo started run $n; "
              "echo complaint $n >&2; trap 'exit 0' TERM; while :; do sleep 0.2; done")
    lab.docker("rm", "-f", name)
    assert lab.docker("run", "-d", "--name", name, "busybox", "sh", "-c", script).returncode == 0
    try:
        logs = open_logs(page, name)
        log_lines(logs, "started run 1").wait_for(timeout=30_000)
        assert log_lines(logs, "complaint 1").get_attribute("class").split()[-1] == "jp-mod-stderr"
        status = logs.locator(".jp-PydockLogs-status")
        assert status.inner_text() == "Following"

        # stopped: the tab says so and waits; started again: the new run's lines come, none twice
        assert lab.docker("stop", name).returncode == 0
        status.get_by_text("waiting for it to start again").wait_for(timeout=30_000)
        assert lab.docker("start", name).returncode == 0
        log_lines(logs, "started run 2").wait_for(timeout=30_000)
        assert status.inner_text() == "Following"
        assert lab.docker("restart", "-t", "5", name).returncode == 0
        log_lines(logs, "complaint 3").wait_for(timeout=30_000)
        texts = [t.strip() for t in logs.locator(".jp-PydockLogs-line").all_inner_texts()]
        assert sorted(texts) == sorted(f"{what} {n}" for n in (1, 2, 3) for what in ("started run", "complaint"))

        # timestamps, shown and hidden
        assert logs.locator(".jp-PydockLogs-ts").count() == 0
        logs.get_by_label("Timestamps").check()
        stamps = logs.locator(".jp-PydockLogs-ts")
        stamps.first.wait_for(timeout=5_000)
        assert stamps.count() == 6 and all(TIMESTAMP.match(t) for t in stamps.all_inner_texts())

        # search: every match highlighted, stepping through them
        logs.get_by_label("Search logs").fill("RUN")
        matches = logs.locator(".jp-PydockLogs-matches")
        matches.get_by_text("of 3").wait_for(timeout=5_000)
        assert logs.locator("mark.jp-PydockLogs-hit").all_inner_texts() == ["run"] * 3
        first = matches.inner_text()
        logs.get_by_label("Search logs").press("Enter")
        assert matches.inner_text() != first
        assert logs.locator(".jp-mod-current mark").count() == 1
        screenshot(page, "lab-logs.png")
        logs.get_by_label("Timestamps").uncheck()
        stamps.first.wait_for(state="detached", timeout=5_000)

        # paused, new lines are counted instead of scrolled to; following again catches up
        logs.get_by_label("Search logs").fill("")
        follow = logs.locator(".jp-PydockLogs-follow")
        if follow.inner_text() == "Pause":
            follow.click()
        assert lab.docker("restart", "-t", "5", name).returncode == 0
        follow.get_by_text("Follow (2 new)").wait_for(timeout=30_000)
        follow.click()
        assert follow.inner_text() == "Pause"
        log_lines(logs, "started run 4").wait_for(timeout=10_000)

        # the whole log, as a file
        with page.expect_download() as download:
            logs.get_by_role("button", name="Download").click()
        saved = download.value
        assert saved.suggested_filename == f"{name}.log"
        with open(saved.path()) as f:
            content = f.read().splitlines()
        assert sorted(content) == sorted(f"{what} {n}" for n in (1, 2, 3, 4) for what in ("started run", "complaint"))

        # removed: the tab says so and stops
        assert lab.docker("rm", "-f", name).returncode == 0
        status.get_by_text("Container removed").wait_for(timeout=30_000)
    finally:
        lab.docker("rm", "-f", name)


@pytest.mark.slow
def test_log_tab_of_a_million_lines(lab: JupyterServer, page: Page) -> None:  # noqa: F811  (fixtures)
    name = "lab-logs-million"
    lab.docker("rm", "-f", name)
    # a little more than the tab loads of a log's past (MAX_HISTORY in logview.ts): the last million lines come
    assert lab.docker("run", "-d", "--name", name, "busybox", "seq", "1", "1000005").returncode == 0
    try:
        assert lab.docker("wait", name).stdout.strip() == "0"
        logs = open_logs(page, name)
        # the tab follows to the end of the log
        logs.locator('.jp-PydockLogs-line[data-index="999999"]', has_text="1000005").wait_for(timeout=120_000)
        logs.get_by_text("Download has the whole log").wait_for()
        rows = logs.locator(".jp-PydockLogs-line")
        assert rows.count() < 200  # only the rows in view exist
        screenshot(page, "lab-logs-million.png")

        def responds_within(seconds: float, act: object, shown: Locator) -> float:
            started = time.monotonic()
            act()  # type: ignore[operator]
            shown.wait_for(timeout=seconds * 1000)
            return time.monotonic() - started

        scroller = logs.locator(".jp-PydockLogs-scroller")
        # to the top, and into the middle, by scrolling
        responds_within(5, lambda: scroller.evaluate("s => { s.scrollTop = 0; }"),
                        logs.locator('.jp-PydockLogs-line[data-index="0"]', has_text="6"))
        # a wheel turn moves by rows, as in a short log, though a scroll pixel is several rows here
        scroller.hover()
        for _ in range(5):
            page.mouse.wheel(0, 180)
        deadline = time.monotonic() + 5
        while (top := int(rows.first.get_attribute("data-index") or 0)) == 0:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert 20 <= top <= 80, top
        responds_within(5, lambda: scroller.evaluate("s => { s.scrollTop = s.scrollHeight / 2; }"),
                        logs.locator('.jp-PydockLogs-line[data-index^="49"], .jp-PydockLogs-line[data-index^="50"]').first)
        # a search over all of it and a click answer in a few seconds (the search first: shown, the
        # timestamps are searched too, and their nanoseconds may well hold "999999")
        responds_within(5, lambda: logs.get_by_label("Search logs").fill("999999"),
                        logs.locator(".jp-PydockLogs-matches", has_text="1 of 1"))
        logs.locator('.jp-mod-current[data-index="999993"]', has_text="999999").wait_for(timeout=5_000)
        screenshot(page, "lab-logs-million-search.png")
        responds_within(5, lambda: logs.get_by_label("Timestamps").check(), logs.locator(".jp-PydockLogs-ts").first)
    finally:
        lab.docker("rm", "-f", name)


@pytest.mark.slow
def test_log_tab_of_a_tty_container(lab: JupyterServer, page: Page) -> None:  # noqa: F811  (fixtures)
    """A TTY container's log is one raw stream, its lines ending in CR LF and coloured by escape codes:
    the tab shows the text."""
    name = "lab-logs-tty"
    lab.docker("rm", "-f", name)
    script = r"printf '\033[32mgreen words\033[0m\n'; echo plain words; sleep 1000"
    assert lab.docker("run", "-d", "-t", "--name", name, "busybox", "sh", "-c", script).returncode == 0
    try:
        logs = open_logs(page, name)
        log_lines(logs, "plain words").wait_for(timeout=30_000)
        texts = [t.strip("\n") for t in logs.locator(".jp-PydockLogs-line").all_inner_texts()]
        assert texts == ["green words", "plain words"]
    finally:
        lab.docker("rm", "-f", name)
