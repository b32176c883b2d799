"""A container terminal for JupyterLab: `<base_url>/pydock/lab/terminal/<container>` (a websocket).

The lab's terminal tab (labextension/src/terminal.ts, xterm.js) opens it.
The handler does what `docker exec -it CONTAINER CMD` does: it creates a TTY
exec with stdin and output attached, starts it on a hijacked connection and
pumps bytes both ways, and passes the tab's size changes on as
`POST /exec/{id}/resize`.

Authentication is Jupyter's, as for its own terminals and kernels: the
login cookie or token on the upgrade request, an Origin check against
cross-site websockets, and the authorizer asked for `execute` on `pydock`.

Wire protocol (query: `cmd` a command line, default the container's bash,
else sh; `rows`, `cols` the initial size):

- browser to server: binary frames are keystrokes (the exec's stdin); text
  frames are JSON control messages, `{"resize": [rows, cols]}`;
- server to browser: binary frames are the terminal's output; a text frame
  `{"exit": code}` when the process ended or `{"error": message}` when the
  engine refused, after which the server closes the socket.

Closing the socket (the tab closed, the browser gone) hangs the terminal up
as a real terminal's hangup does: the exec's session gets SIGHUP, and
whatever of it is still there after a grace period gets SIGKILL, so no
process of the tab is left in the container. dockerd has no API to signal
an exec; the exec's PID from `GET /exec/{id}/json` is on this host (the
engine is in this process, or a pydockd on this machine's unix socket).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import shlex
import signal
import urllib.parse
from collections.abc import Coroutine
from inspect import isawaitable
from typing import Any

from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado.web import HTTPError
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from .enginelink import EngineCallError, EngineLink, Stream, call, request

log = logging.getLogger(__name__)

# bash where the image has it, else the POSIX shell every image with a shell has (VS Code's Docker
# extension picks the same way); `exec` keeps the shell the exec's own process
DEFAULT_CMD = ["sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash; fi; exec sh"]
HANGUP_GRACE = 2.0  # seconds between SIGHUP and SIGKILL for a closed terminal's processes
READ_SIZE = 65536


class TerminalSession:
    """One TTY exec in a container, attached through the engine's API."""

    def __init__(self, link: EngineLink, container: str, cmd: list[str], size: tuple[int, int] | None) -> None:
        self.link = link
        self.container = container
        self.cmd = cmd
        self.size = size
        self.exec_id = ""
        self.stream: Stream | None = None
        self.hung_up = False  # the terminal was closed; a start still under way is ended when it completes

    async def start(self) -> Stream:
        """Create and start the exec; returns its hijacked stream (raw TTY bytes both ways)."""
        console = list(self.size) if self.size else None
        _, created = await call(self.link, "POST", f"/containers/{_q(self.container)}/exec", {
            "AttachStdin": True, "AttachStdout": True, "AttachStderr": True, "Tty": True, "Cmd": self.cmd,
            "ConsoleSize": console})
        self.exec_id = created["Id"]
        status, _, stream = await request(
            self.link, "POST", f"/exec/{self.exec_id}/start", {"Detach": False, "Tty": True, "ConsoleSize": console},
            upgrade=True)
        if status >= 400:
            reader, writer = stream
            body = await reader.read()
            writer.close()
            try:
                message = json.loads(body).get("message") or body.decode(errors="replace")
            except (ValueError, AttributeError):
                message = body.decode(errors="replace")
            raise EngineCallError(status, message.strip())
        self.stream = stream
        return stream

    async def resize(self, rows: int, cols: int) -> None:
        if self.exec_id:
            await call(self.link, "POST", f"/exec/{self.exec_id}/resize?h={rows}&w={cols}")

    async def inspect(self) -> dict[str, Any]:
        _, doc = await call(self.link, "GET", f"/exec/{self.exec_id}/json")
        return doc if isinstance(doc, dict) else {}

    async def hang_up(self) -> None:
        """End the exec as a terminal hangup would: SIGHUP to its session, SIGKILL to what stays."""
        self.hung_up = True
        if self.stream is not None:
            self.stream[1].close()
        if not self.exec_id:
            return
        loop = asyncio.get_running_loop()
        try:
            info = await self.inspect()
            if not info.get("Running") or not info.get("Pid"):
                return
            pid = int(info["Pid"])
            await loop.run_in_executor(None, signal_session, pid, signal.SIGHUP)
            deadline = loop.time() + HANGUP_GRACE
            while loop.time() < deadline:
                await asyncio.sleep(0.1)
                if not (await self.inspect()).get("Running"):
                    return
            await loop.run_in_executor(None, signal_session, pid, signal.SIGKILL)
        except EngineCallError as e:  # the container went first: nothing left to end
            log.debug("pydock terminal %s: %s", self.exec_id[:12], e.message)


def signal_session(sid: int, sig: int) -> int:
    """Send `sig` to every process of the session `sid` (a TTY exec's process leads one); returns how many.

    A session ID is not reused while any process of it lives, so these are the exec's processes.
    """
    sent = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
            # pid (comm) state ppid pgrp session ...; comm may hold spaces and parentheses
            fields = stat[stat.rindex(b")") + 2:].split()
            if int(fields[3]) != sid:
                continue
            os.kill(int(entry), sig)
            sent += 1
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not ours to signal
    return sent


class TerminalHandler(WebSocketMixin, WebSocketHandler, JupyterHandler):  # type: ignore[misc]
    """A TTY exec session per websocket."""

    auth_resource = "pydock"

    def initialize(self, link: EngineLink, sessions: set[TerminalSession]) -> None:  # type: ignore[override]
        self.link = link
        self.sessions = sessions
        self.session: TerminalSession | None = None

    @ws_authenticated
    async def get(self, container: str) -> None:  # type: ignore[override]
        allowed = self.authorizer.is_authorized(self, self.current_user, "execute", self.auth_resource)
        if isawaitable(allowed):
            allowed = await allowed
        if not allowed:
            raise HTTPError(403, f"user may not execute {self.auth_resource}")
        await WebSocketHandler.get(self, container)

    async def open(self, container: str) -> None:  # type: ignore[override]
        super().open()  # the mixin's keep-alive pings
        query = urllib.parse.parse_qs(self.request.query)
        line = (query.get("cmd") or [""])[0].strip()
        try:
            cmd = shlex.split(line) if line else DEFAULT_CMD
            size = (int(query["rows"][0]), int(query["cols"][0])) if "rows" in query and "cols" in query else None
        except (ValueError, KeyError) as e:
            await self._fail(f"bad terminal request: {e}", 1008)
            return
        session = self.session = TerminalSession(self.link, urllib.parse.unquote(container), cmd, size)
        self.sessions.add(session)
        try:
            reader, _ = await session.start()
        except EngineCallError as e:
            await self._fail(e.message, 1011)
            return
        if session.hung_up:  # the browser left while the exec started: end what it started
            await session.hang_up()
            return
        _background(self._output(session, reader))

    async def _output(self, session: TerminalSession, reader: asyncio.StreamReader) -> None:
        """Terminal output to the browser, at the pace the browser takes it; then how it ended."""
        try:
            while data := await reader.read(READ_SIZE):
                await self.write_message(data, binary=True)
            try:
                ended: dict[str, Any] = {"exit": (await session.inspect()).get("ExitCode")}
            except EngineCallError as e:  # e.g. the container was removed under the session
                ended = {"error": e.message}
            await self.write_message(json.dumps(ended))
        except (WebSocketClosedError, OSError):
            return  # the browser went away; on_close hangs up
        self.close(1000)

    async def on_message(self, message: str | bytes) -> None:
        session = self.session
        if session is None or session.stream is None:
            return
        if isinstance(message, bytes):
            writer = session.stream[1]
            try:
                writer.write(message)
                await writer.drain()
            except OSError:
                pass  # the exec ended; the output side reports it
            return
        try:
            control = json.loads(message)
            rows, cols = (int(v) for v in control["resize"])
        except (ValueError, TypeError, KeyError):
            log.warning("pydock terminal: ignoring control message %r", message[:100])
            return
        try:
            await session.resize(rows, cols)
        except EngineCallError as e:  # e.g. the process has just ended
            log.debug("pydock terminal resize: %s", e.message)

    def on_close(self) -> None:
        if self.session is not None:
            _background(self._end())

    async def _end(self) -> None:
        session, self.session = self.session, None
        if session is None:
            return
        try:
            await session.hang_up()
        finally:
            self.sessions.discard(session)

    async def _fail(self, message: str, code: int) -> None:
        try:
            await self.write_message(json.dumps({"error": message}))
        except WebSocketClosedError:
            pass
        self.close(code)
        await self._end()


async def hang_up_all(sessions: set[TerminalSession]) -> None:
    """End every open terminal (the server is stopping: its tabs cannot reach them any more)."""
    await asyncio.gather(*(s.hang_up() for s in list(sessions)), return_exceptions=True)
    sessions.clear()


_TASKS: set[asyncio.Task[None]] = set()  # the loop holds tasks weakly: these must run to their end


def _background(work: Coroutine[Any, Any, None]) -> None:
    task = asyncio.ensure_future(work)
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)


def terminal_route(prefix: str, link: EngineLink, sessions: set[TerminalSession]) -> tuple[str, type, dict[str, Any]]:
    return (prefix + r"/lab/terminal/(?P<container>[^/]+)", TerminalHandler, {"link": link, "sessions": sessions})


def _q(ref: str) -> str:
    return urllib.parse.quote(ref, safe="")
