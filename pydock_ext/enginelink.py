"""The engine's Docker API as seen from inside the Jupyter server, for handlers that are not API routes.

The lab's terminal (terminal.py) drives a TTY exec through the very API the
docker CLI uses: create, a hijacked start, resize, inspect. It reaches that
API over a connection of its own, without going through Jupyter's HTTP
stack (and its token) a second time:

- `SocketLink`: pydockd's unix socket, when the server forwards to one. The
  host policy that ProxyHandler applies to forwarded requests is applied
  here too, so a terminal can do no more than the API behind `/pydock` can.
- `InProcessLink`: the engine inside the server, through one end of a socket
  pair whose other end is served by the engine's API routes (with the host
  policy built in) on the server's own IO loop.

Both speak plain HTTP/1.1, one request per connection, on asyncio streams:
nothing here blocks the IO loop.
"""
from __future__ import annotations

import asyncio
import json
import socket
import urllib.parse
from typing import Any, Protocol

import tornado.httpserver
import tornado.iostream
import tornado.web

from engine.api import NotFoundHandler, check_forwarded, make_routes
from engine.api.errors import status_of
from engine.engine import Engine
from engine.errors import EngineError
from engine.hostpolicy import HostPolicy
from pydock_common.apiversion import API_VERSION

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class EngineCallError(Exception):
    """The engine refused a call: its HTTP status and Docker's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class EngineLink(Protocol):
    async def connect(self) -> Stream:
        """A fresh connection to the engine's API."""
        ...

    async def check(self, method: str, path: str, body: bytes) -> None:
        """Refuse (EngineError) what the host policy refuses, before the request (`path` below the API
        version, without its query) is sent."""
        ...


class SocketLink:
    """pydockd at a unix socket; the policy is applied here, as for every request the server forwards."""

    def __init__(self, path: str, policy: HostPolicy) -> None:
        self.path = path
        self.policy = policy

    async def connect(self) -> Stream:
        return await asyncio.open_unix_connection(self.path)

    async def check(self, method: str, path: str, body: bytes) -> None:
        if method not in ("POST", "PUT"):
            return  # check_forwarded has nothing to say about other methods
        inspected: dict[str, dict[str, Any]] = {}
        # check_forwarded inspects at most the container the path names, synchronously: fetch it first
        ref = _container_ref(path)
        if ref is not None:
            status, doc = await call(self, "GET", f"/containers/{urllib.parse.quote(ref, safe='')}/json",
                                     checked=False)
            inspected[ref] = doc if status == 200 and isinstance(doc, dict) else {}
        check_forwarded(self.policy, method, f"/v{API_VERSION}{path}", "", body, lambda r: inspected.get(r, {}))


class InProcessLink:
    """The in-process engine's API routes, served on this loop to one end of a socket pair per connection."""

    def __init__(self, engine: Engine, policy: HostPolicy) -> None:
        app = tornado.web.Application(make_routes(engine, policy=policy), default_handler_class=NotFoundHandler)
        self.server = tornado.httpserver.HTTPServer(app)

    async def connect(self) -> Stream:
        ours, theirs = socket.socketpair()
        theirs.setblocking(False)
        self.server.handle_stream(tornado.iostream.IOStream(theirs), "")
        return await asyncio.open_unix_connection(sock=ours)

    async def check(self, method: str, path: str, body: bytes) -> None:
        """The routes apply the policy themselves."""


def _container_ref(path: str) -> str | None:
    """The container a path below the API version names (`/containers/REF/...`), if any."""
    parts = path.split("/")
    return urllib.parse.unquote(parts[2]) if len(parts) > 2 and parts[1] == "containers" else None


async def request(link: EngineLink, method: str, path: str, body: Any = None, upgrade: bool = False
                  ) -> tuple[int, dict[str, str], Stream]:
    """Send one request (`path` below the API version, e.g. `/exec/ID/json`); returns the status, the
    response headers (lower-case names) and the connection, positioned at the response body.

    With `upgrade`, the request asks for the connection to be hijacked, as `docker exec -it` does.
    """
    data = b"" if body is None else json.dumps(body).encode()
    try:
        await link.check(method, path.split("?")[0], data)
    except EngineError as e:
        raise EngineCallError(status_of(e), e.message) from e
    try:
        reader, writer = await link.connect()
    except OSError as e:
        raise EngineCallError(502, f"cannot reach the engine: {e.strerror or e}") from e
    lines = [f"{method} /v{API_VERSION}{path} HTTP/1.1", "Host: pydock", f"Content-Length: {len(data)}"]
    if body is not None:
        lines.append("Content-Type: application/json")
    lines += ["Connection: Upgrade", "Upgrade: tcp"] if upgrade else ["Connection: close"]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
    try:
        await writer.drain()
        status_line = await reader.readline()
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        status = int(status_line.split()[1])
    except (OSError, IndexError, ValueError) as e:
        writer.close()
        raise EngineCallError(502, f"the engine did not answer: {e or 'connection closed'}") from e
    return status, headers, (reader, writer)


async def call(link: EngineLink, method: str, path: str, body: Any = None, checked: bool = True
               ) -> tuple[int, Any]:
    """One plain request; returns the status and the decoded JSON body (None if empty).

    With `checked`, a status of 400 or more raises EngineCallError with the engine's message.
    """
    status, headers, (reader, writer) = await request(link, method, path, body)
    try:
        length = headers.get("content-length")
        payload = await (reader.readexactly(int(length)) if length is not None else reader.read())
    except (OSError, asyncio.IncompleteReadError) as e:
        raise EngineCallError(502, f"the engine's answer broke off: {e}") from e
    finally:
        writer.close()
    try:
        doc = json.loads(payload) if payload.strip() else None
    except ValueError:
        doc = None
    if checked and status >= 400:
        message = doc.get("message") if isinstance(doc, dict) else None
        raise EngineCallError(status, message or payload.decode(errors="replace").strip() or f"status {status}")
    return status, doc
