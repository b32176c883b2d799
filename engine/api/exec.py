"""Exec routes: create, start (hijacked like attach unless detached), resize, inspect."""
from __future__ import annotations

import base64
import functools
import socket
from collections.abc import Callable
from typing import Any, Protocol

from engine.api.base import ID, ApiHandler, StreamOwner, bind, route
from engine.api.parked import THREADS
from engine.types.container import ExecConfig, ExecStartConfig, HostConfig


class Execs(Protocol):
    def create(self, ref: str, req: ExecConfig) -> str: ...
    def check(self, eid: str) -> ExecInstance: ...
    def start(self, eid: str, console_size: tuple[int, int] | None = None,
              attach: bool = False) -> Attachment | None: ...
    def wait(self, eid: str, timeout: float) -> None: ...
    def resize(self, eid: str, h: int, w: int) -> None: ...
    def inspect(self, eid: str) -> ExecInstance: ...


class ContainerLookup(Protocol):
    def host_config_of(self, ref: str) -> HostConfig | None: ...


class Backend(StreamOwner, Protocol):
    @property
    def execs(self) -> Execs: ...
    @property
    def containers(self) -> ContainerLookup: ...


class _Handler(ApiHandler[Backend]):
    pass
from engine.api.streams import DEFAULT_DETACH_KEYS, Hangup, hijack, pump, run_session
from engine.container.core import Attachment
from engine.container.exec import ExecInstance, parse_console_size
from engine.errors import EngineError
from pydock_common.stdcopy import MUX, RAW, STDOUT, Deframer, as_stdout_frame, frame

# How long a finished exec's stream waits for its exit to be recorded, so that
# the client's inspect right after EOF sees the exit code.
EXIT_GRACE = 5.0


class ExecCreateHandler(_Handler):
    async def post(self, version: str | None = None, ref: str = "") -> None:
        req = self.decoded(ExecConfig)
        self.policy.check_exec_create(req)
        await self.run(self.policy.check_container_use, lambda: self.engine.containers.host_config_of(ref))
        self.send_json({"Id": await self.run(self.engine.execs.create, ref, req)}, 201)


class ExecStartHandler(_Handler):
    async def post(self, version: str | None = None, ref: str = "") -> None:
        req = self.decoded(ExecStartConfig, required=False)
        console_size = parse_console_size(req.console_size) if req.tty else None  # as Docker
        execs = self.engine.execs
        ec = await self.run(execs.check, ref)  # errors before the hijack are HTTP errors
        if req.detach:
            await self.run(execs.start, ref, console_size)
            self.set_status(200)
            self.finish()
            return
        # the start body's Tty decides the stream's format, as in dockerd (docker-py's exec_start sends tty=False
        # by default whatever the exec was created with); the exec's own output is reframed when they differ
        client, leftover = await hijack(self, RAW if req.tty else MUX)
        outbound = None if req.tty == ec.tty else (Deframer() if req.tty else as_stdout_frame)
        keys = ec.detach_keys or DEFAULT_DETACH_KEYS
        serve = functools.partial(_session, execs, ref, console_size, req.tty, client, leftover, keys, outbound)
        THREADS.run(run_session, self.engine.streams, client, serve, name="exec")


def _session(execs: Execs, eid: str, console_size: tuple[int, int] | None, tty: bool,
             client: socket.socket, leftover: bytes, detach_keys: bytes,
             outbound: Callable[[bytes], bytes] | None, hangup: Hangup) -> None:
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
    pump(client, att, leftover, before_close=lambda: execs.wait(eid, EXIT_GRACE), detach_keys=detach_keys,
         outbound=outbound)


class ExecResizeHandler(_Handler):
    async def post(self, version: str | None = None, ref: str = "") -> None:
        h, w = self.q_int("h", 0), self.q_int("w", 0)
        await self.run(self.engine.execs.resize, ref, h, w)
        self.set_status(200)
        self.finish()


class ExecInspectHandler(_Handler):
    async def get(self, version: str | None = None, ref: str = "") -> None:
        self.send_json(exec_json(await self.run(self.engine.execs.inspect, ref)))


def exec_json(ec: ExecInstance) -> dict[str, Any]:
    """GET /exec/{id}/json."""
    pc: dict[str, Any] = {"tty": ec.tty, "entrypoint": ec.entrypoint, "arguments": ec.args,
                          "privileged": ec.privileged}
    if ec.user:
        pc["user"] = ec.user
    return {
        "ID": ec.id, "Running": ec.running, "ExitCode": ec.exit_code, "ProcessConfig": pc,
        "OpenStdin": ec.open_stdin, "OpenStderr": ec.open_stderr, "OpenStdout": ec.open_stdout,
        "CanRemove": False, "ContainerID": ec.container_id,
        "DetachKeys": base64.b64encode(ec.detach_keys).decode(),  # Go marshals []byte as base64
        "Pid": ec.pid,
    }


ROUTES: list[tuple[str, Any]] = [
    (route(rf"/containers/{ID}/exec"), ExecCreateHandler),
    (route(rf"/exec/{ID}/start"), ExecStartHandler),
    (route(rf"/exec/{ID}/resize"), ExecResizeHandler),
    (route(rf"/exec/{ID}/json"), ExecInspectHandler),
]


def routes(backend: Backend) -> list[tuple[str, type[ApiHandler[Any]], Backend]]:
    return bind(ROUTES, backend)
