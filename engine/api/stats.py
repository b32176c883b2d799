"""Container resource routes: stats (one object or a once-a-second stream) and top."""
from __future__ import annotations

import json
import threading

import tornado.iostream

from ..errors import InvalidParameter
from .base import ID, ApiHandler, route


class ContainerStatsHandler(ApiHandler):
    _cancel: threading.Event | None = None

    async def get(self, version: str | None = None, ref: str = "") -> None:
        stream = self.q_bool("stream", True)
        one_shot = self.q_bool("one-shot")
        if stream and one_shot:
            raise InvalidParameter("cannot have stream=true and one-shot=true")
        if not stream:
            self.send_json(await self.in_thread(self.engine.stats.snapshot, ref, one_shot))
            return
        cid = await self.run(self.engine.containers.resolve, ref)  # 404 before any header is sent
        self._cancel = cancel = threading.Event()
        self.set_header("Content-Type", "application/json")
        try:
            async for frame in self.stream_thread(lambda c: self.engine.stats.stream(cid, c), cancel):
                self.write(json.dumps(frame) + "\n")
                await self.flush()
        except tornado.iostream.StreamClosedError:
            return
        finally:
            cancel.set()
        self.finish()

    def on_connection_close(self) -> None:
        if self._cancel is not None:
            self._cancel.set()


class ContainerTopHandler(ApiHandler):
    async def get(self, version: str | None = None, ref: str = "") -> None:
        self.send_json(await self.run(self.engine.stats.top, ref, self.q_str("ps_args")))


ROUTES = [
    (route(rf"/containers/{ID}/stats"), ContainerStatsHandler),
    (route(rf"/containers/{ID}/top"), ContainerTopHandler),
]
