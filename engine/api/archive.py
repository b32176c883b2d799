"""Container filesystem routes: `docker cp` (archive), `export`, `diff` (changes) and `commit`."""
from __future__ import annotations

import asyncio
import base64
import io
import json
import threading
from collections.abc import Callable, Iterable
from typing import IO, Any, Protocol

from tornado.iostream import StreamClosedError

from engine import wire
from engine.api.base import ID, ApiHandler, Route, StreamOwner, bind, route
from engine.types.container import ContainerConfig, HostConfig


class ContainerFiles(Protocol):
    """The archive service: files of a container."""

    def stat_path(self, ref: str, path: str) -> dict[str, Any]: ...
    def get_archive(self, ref: str, path: str, on_stat: Callable[[dict[str, Any]], None], out: IO[bytes]) -> None: ...
    def put_archive(self, ref: str, path: str, src: IO[bytes], no_overwrite_dir_non_dir: bool = False,
                    copy_uid_gid: bool = False) -> None: ...
    def export(self, ref: str, out: IO[bytes]) -> None: ...
    def changes(self, ref: str) -> list[dict[str, Any]] | None: ...
    def commit(self, ref: str, repo: str = "", tag: str = "", comment: str = "", author: str = "",
               pause: bool = True, changes: Iterable[str] = (), config: ContainerConfig | None = None) -> str: ...


class ContainerLookup(Protocol):
    def host_config_of(self, ref: str) -> HostConfig | None: ...


class Backend(StreamOwner, Protocol):
    @property
    def archive(self) -> ContainerFiles: ...
    @property
    def containers(self) -> ContainerLookup: ...


class _Handler(ApiHandler[Backend]):
    pass
from engine.api.upload import UploadHandler
from engine.errors import InvalidParameter

STAT_HEADER = "X-Docker-Container-Path-Stat"
TAR = "application/x-tar"


def encode_stat(stat: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(stat, separators=(",", ":")).encode()).decode()


class _LoopSink(io.RawIOBase):
    """Where an engine thread writes a response body.

    Each write waits until the IO loop has flushed it to the client, so a
    slow client slows the writer down and a vanished one raises in it; the
    engine then unwinds (container lock, temporary mount) in its own thread.

    A write on the loop's own thread could only wait for itself: that happens
    when the garbage collector finalizes the BufferedWriter around the sink
    (its close flushes what a failed copy left buffered) while the loop runs,
    and it hung the whole daemon. Such a write, and any after the client has
    gone, fails at once instead.
    """

    def __init__(self, handler: ApiHandler, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.handler = handler
        self.loop = loop
        self.loop_thread = threading.get_ident()  # made by a handler, on the loop's thread
        self.broken = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self.broken or threading.get_ident() == self.loop_thread:
            raise BrokenPipeError("the client is gone")
        chunk = bytes(data)
        try:
            asyncio.run_coroutine_threadsafe(self._send(chunk), self.loop).result()
        except BaseException:
            self.broken = True
            raise
        return len(chunk)

    async def _send(self, chunk: bytes) -> None:
        self.handler.write(chunk)
        await self.handler.flush()


class _TarStream(_Handler):
    def sink(self) -> io.BufferedWriter:
        self.set_header("Content-Type", TAR)
        return io.BufferedWriter(_LoopSink(self, asyncio.get_running_loop()), 1 << 20)

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, StreamClosedError):
            return  # the client went away mid-tar; the engine side has already unwound
        super()._handle_request_exception(e)


class ArchiveHandler(UploadHandler, _TarStream):
    def path_arg(self) -> str:
        path = self.q_str("path")
        if not path:
            # sic: Docker's message lacks the space
            raise InvalidParameter("bad parameter: pathcannot be empty")
        return path

    async def head(self, version: str | None = None, ref: str = "") -> None:
        stat = await self.run(self.engine.archive.stat_path, ref, self.path_arg())
        self.set_header(STAT_HEADER, encode_stat(stat))
        self.set_header("Content-Type", "application/json")
        self.finish()

    async def get(self, version: str | None = None, ref: str = "") -> None:
        path = self.path_arg()
        loop = asyncio.get_running_loop()

        def on_stat(stat: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(self.set_header, STAT_HEADER, encode_stat(stat))

        await self.in_thread(self.engine.archive.get_archive, ref, path, on_stat, self.sink())
        self.finish()

    async def put(self, version: str | None = None, ref: str = "") -> None:
        # files copied into a container with host access would run with it at its next start
        await self.run(self.policy.check_container_use, lambda: self.engine.containers.host_config_of(ref))
        await self.in_thread(self.engine.archive.put_archive, ref, self.path_arg(), self.body_file(),
                             self.q_bool("noOverwriteDirNonDir"), self.q_bool("copyUIDGID"))
        self.finish()


class ExportHandler(_TarStream):
    async def get(self, version: str | None = None, ref: str = "") -> None:
        await self.in_thread(self.engine.archive.export, ref, self.sink())
        self.finish()


class ChangesHandler(_Handler):
    async def get(self, version: str | None = None, ref: str = "") -> None:
        self.send_json(await self.run(self.engine.archive.changes, ref))


class CommitHandler(_Handler):
    async def post(self, version: str | None = None) -> None:
        body = self.json_body(required=False)
        # no body, `null` or `{}`: the container's own config
        config = None if body is None or body == {} else wire.decode(ContainerConfig, body)
        image_id = await self.in_thread(
            self.engine.archive.commit, self.q_str("container"), self.q_str("repo"), self.q_str("tag"),
            self.q_str("comment"), self.q_str("author"), self.q_bool("pause", True),
            self.get_query_arguments("changes"), config)
        self.send_json({"Id": image_id}, 201)


ROUTES: list[Route] = [
    (route(rf"/containers/{ID}/archive"), ArchiveHandler),
    (route(rf"/containers/{ID}/export"), ExportHandler),
    (route(rf"/containers/{ID}/changes"), ChangesHandler),
    (route(r"/commit"), CommitHandler),
]


def routes(backend: Backend) -> list[tuple[str, type[ApiHandler[Any]], Backend]]:
    return bind(ROUTES, backend)
