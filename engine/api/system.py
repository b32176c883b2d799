"""System routes: ping, version, info, df, events."""
from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import tornado.iostream

from engine import wire
from engine.api.base import ApiHandler, Route, StreamOwner, bind, route
from engine.api.containers import ContainerViews, summaries
from engine.api.system_json import df_images_json, info_json, version_json
from engine.errors import InvalidParameter
from engine.events import Event, Subscriber, matches
from engine.filters import Filters
from engine.system import DiskUsage, SystemFacts
from engine.timeutil import parse_api_time
from engine.types.volume import Volume


class SystemViews(Protocol):
    def runc_version(self) -> str: ...
    def facts(self) -> SystemFacts: ...
    def df(self) -> DiskUsage: ...


class EventSource(Protocol):
    def subscribe(self, fn: Subscriber, since_ns: int | None = None, until_ns: int | None = None) -> list[Event]: ...
    def unsubscribe(self, fn: Subscriber) -> None: ...


class VolumeUsage(Protocol):
    def df(self) -> list[Volume]: ...


class Backend(StreamOwner, ContainerViews, Protocol):
    @property
    def system(self) -> SystemViews: ...
    @property
    def volumes(self) -> VolumeUsage: ...
    @property
    def events(self) -> EventSource: ...


class _Handler(ApiHandler[Backend]):
    pass


class PingHandler(_Handler):
    def get(self, version: str | None = None) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("Cache-Control", "no-cache, no-store, must-revalidate")
        self.set_header("Builder-Version", "1")
        self.finish("OK")

    def head(self, version: str | None = None) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("Builder-Version", "1")
        self.finish()


class VersionHandler(_Handler):
    async def get(self, version: str | None = None) -> None:
        self.send_json(version_json(await self.run(self.engine.system.runc_version)))


class InfoHandler(_Handler):
    async def get(self, version: str | None = None) -> None:
        self.send_json(info_json(await self.run(self.engine.system.facts)))


DF_TYPES = ("container", "image", "volume", "build-cache")


def _df(backend: Backend) -> dict[str, Any]:
    """`docker system df`: the system service's images and volumes, and the containers as `ps -as` shows them."""
    out = df_images_json(backend.system.df())
    out["Containers"] = summaries(backend, True, -1, True, Filters())
    out["Volumes"] = [wire.encode(v) for v in backend.volumes.df()]
    return out


class DfHandler(_Handler):
    async def get(self, version: str | None = None) -> None:
        for t in self.request.query_arguments.get("type", []):
            if t.decode(errors="replace") not in DF_TYPES:
                raise InvalidParameter(f"unknown object type: {t.decode(errors='replace')}")
        self.send_json(await self.run(_df, self.engine))


class EventsHandler(_Handler):
    """Streams events as newline-separated JSON until `until` passes or the client leaves.

    Like Docker, an `until` in the past only replays history and returns.
    """

    _queue: asyncio.Queue[Event | None] | None = None

    async def get(self, version: str | None = None) -> None:
        filters = self.q_filters()
        since, until = self.q_str("since"), self.q_str("until")
        since_ns = parse_api_time(since) if since else None
        until_ns = parse_api_time(until) if until else None
        if until_ns is not None and until_ns < (since_ns or 0):
            raise InvalidParameter(f"`since` time ({since}) cannot be after `until` time ({until})")
        loop = asyncio.get_running_loop()
        self._queue = queue = asyncio.Queue[Event | None]()

        def on_event(ev: Event) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, ev)

        ended = threading.Event()
        with self.engine.streams.track(ended, lambda: loop.call_soon_threadsafe(queue.put_nowait, None)):
            await self._stream(queue, on_event, filters, since_ns, until_ns)

    async def _stream(self, queue: asyncio.Queue[Event | None], on_event: Callable[[Event], None],
                      filters: Filters, since_ns: int | None, until_ns: int | None) -> None:
        past = self.engine.events.subscribe(on_event, since_ns, until_ns)
        try:
            self.set_header("Content-Type", "application/json")
            await self._send([ev for ev in past if matches(ev, filters)])
            while until_ns is None or until_ns > time.time_ns():
                timeout = None if until_ns is None else (until_ns - time.time_ns()) / 1e9
                try:
                    ev = await asyncio.wait_for(queue.get(), timeout)
                except asyncio.TimeoutError:
                    break
                if ev is None:
                    return  # client went away, or the engine is shutting down
                if matches(ev, filters):
                    await self._send([ev])
        except tornado.iostream.StreamClosedError:
            return
        finally:
            self.engine.events.unsubscribe(on_event)
        self.finish()

    async def _send(self, events: list[Event]) -> None:
        for ev in events:
            self.write(json.dumps(ev) + "\n")
        await self.flush()

    def on_connection_close(self) -> None:
        if self._queue is not None:
            self._queue.put_nowait(None)


ROUTES: list[Route] = [
    (route(r"/_ping"), PingHandler),
    (route(r"/version"), VersionHandler),
    (route(r"/info"), InfoHandler),
    (route(r"/system/df"), DfHandler),
    (route(r"/events"), EventsHandler),
]


def routes(backend: Backend) -> list[tuple[str, type[ApiHandler[Any]], Backend]]:
    return bind(ROUTES, backend)
