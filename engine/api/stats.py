"""Container resource routes: stats (one object or a once-a-second stream) and top."""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any, Protocol

from engine.api.base import ID, ApiHandler, Route, StreamOwner, bind, route
from engine.errors import InvalidParameter

Json = dict[str, Any]


class Stats(Protocol):
    def snapshot(self, ref: str, one_shot: bool = False) -> Json: ...
    def stream(self, ref: str, cancel: threading.Event) -> Iterator[Json]: ...
    def top(self, ref: str, ps_args: str = "") -> Json: ...


class ContainerLookup(Protocol):
    def resolve(self, ref: str) -> str: ...


class Backend(StreamOwner, Protocol):
    @property
    def stats(self) -> Stats: ...
    @property
    def containers(self) -> ContainerLookup: ...


class _Handler(ApiHandler[Backend]):
    pass


class ContainerStatsHandler(_Handler):
    async def get(self, version: str | None = None, ref: str = "") -> None:
        stream = self.q_bool("stream", True)
        one_shot = self.q_bool("one-shot")
        if stream and one_shot:
            raise InvalidParameter("cannot have stream=true and one-shot=true")
        if not stream:
            self.send_json(await self.in_thread(self.engine.stats.snapshot, ref, one_shot))
            return
        cid = await self.run(self.engine.containers.resolve, ref)  # 404 before any header is sent
        await self.send_stream(lambda c: (json.dumps(f).encode() + b"\n" for f in self.engine.stats.stream(cid, c)),
                               "application/json")


class ContainerTopHandler(_Handler):
    async def get(self, version: str | None = None, ref: str = "") -> None:
        self.send_json(await self.run(self.engine.stats.top, ref, self.q_str("ps_args")))


ROUTES: list[Route] = [
    (route(rf"/containers/{ID}/stats"), ContainerStatsHandler),
    (route(rf"/containers/{ID}/top"), ContainerTopHandler),
]


def routes(backend: Backend) -> list[tuple[str, type[ApiHandler[Any]], Backend]]:
    return bind(ROUTES, backend)
