"""Exec routes: create, start (hijacked like attach unless detached), resize, inspect."""
from __future__ import annotations

import functools
import socket
import threading
from typing import Any, Protocol

from engine import validate
from engine.api.base import ID, ApiHandler, StreamOwner, bind, route


class Execs(Protocol):
    def create(self, ref: str, body: Any) -> dict[str, str]: ...
    def check(self, eid: str) -> ExecInstance: ...
    def start(self, eid: str, console_size: tuple[int, int] | None = None,
              attach: bool = False) -> Attachment | None: ...
    def wait(self, eid: str, timeout: float) -> None: ...
    def resize(self, eid: str, h: int, w: int) -> None: ...
    def inspect(self, eid: str) -> dict[str, Any]: ...


class ContainerLookup(Protocol):
    def get(self, ref: str) -> dict[str, Any]: ...


class Backend(StreamOwner, Protocol):
    @property
    def execs(self) -> Execs: ...
    @property
    def containers(self) -> ContainerLookup: ...


class _Handler(ApiHandler[Backend]):
    pass
from engine.api.streams import Hangup, hijack, pump, run_session
from engine.container.core import Attachment
from engine.container.exec import ExecInstance, parse_console_size
from engine.errors import EngineError, InvalidParameter
from pydock_common.stdcopy import MUX, RAW, STDOUT, frame

# How long a finished exec's stream waits for its exit to be recorded, so that
# the client's inspect right after EOF sees the exit code.
EXIT_GRACE = 5.0


class ExecCreateHandler(_Handler):
    async def post(self, version: str | None = None, ref: str = "") -> None:
        body = self.decoded_body(validate.EXEC_CREATE)
        self.policy.check_exec_create(body)
        await self.run(self.policy.check_container_use, lambda: self.engine.containers.get(ref))
        self.send_json(await self.run(self.engine.execs.create, ref, body), 201)


class ExecStartHandler(_Handler):
    async def post(self, version: str | None = None, ref: str = "") -> None:
        body = self.json_body(required=False)
        if not isinstance(body, dict):
            raise InvalidParameter("invalid exec start config")
        console_size = parse_console_size(body.get("ConsoleSize")) if body.get("Tty") else None  # as Docker
        execs = self.engine.execs
        ec = await self.run(execs.check, ref)  # errors before the hijack are HTTP errors
        if body.get("Detach"):
            await self.run(execs.start, ref, console_size)
            self.set_status(200)
            self.finish()
            return
        client, leftover = await hijack(self, RAW if ec.tty else MUX)
        serve = functools.partial(_session, execs, ref, console_size, ec.tty, client, leftover)
        threading.Thread(target=run_session, args=(self.engine.streams, client, serve), daemon=True,
                         name="exec").start()


def _session(execs: Execs, eid: str, console_size: tuple[int, int] | None, tty: bool,
             client: socket.socket, leftover: bytes, hangup: Hangup) -> None:
    """Start the exec on a hijacked connection; a start error goes into the stream, as Docker does."""
    try:
        att: Attachment | None = execs.start(eid, console_size, attach=True)
    except EngineError as e:
        message = (e.message + "\r\n").encode()
        try:
            client.sendall(message if tty else frame(STDOUT, message))
        except OSError:
            pass
        client.close()
        return
    assert att is not None
    att.ready.wait()
    hangup.add(att.sock)
    pump(client, att, leftover, before_close=lambda: execs.wait(eid, EXIT_GRACE))


class ExecResizeHandler(_Handler):
    async def post(self, version: str | None = None, ref: str = "") -> None:
        h, w = self.q_int("h", 0), self.q_int("w", 0)
        await self.run(self.engine.execs.resize, ref, h, w)
        self.set_status(200)
        self.finish()


class ExecInspectHandler(_Handler):
    async def get(self, version: str | None = None, ref: str = "") -> None:
        self.send_json(await self.run(self.engine.execs.inspect, ref))


ROUTES: list[tuple[str, Any]] = [
    (route(rf"/containers/{ID}/exec"), ExecCreateHandler),
    (route(rf"/exec/{ID}/start"), ExecStartHandler),
    (route(rf"/exec/{ID}/resize"), ExecResizeHandler),
    (route(rf"/exec/{ID}/json"), ExecInspectHandler),
]


def routes(backend: Backend) -> list[tuple[str, type[ApiHandler[Any]], Backend]]:
    return bind(ROUTES, backend)
