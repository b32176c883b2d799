"""System routes: ping, version, info, df, events."""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from ..errors import InvalidParameter
from ..timeutil import parse_api_time
from .base import ApiHandler, route


class PingHandler(ApiHandler):
    def get(self, version: str | None = None) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("Cache-Control", "no-cache, no-store, must-revalidate")
        self.set_header("Builder-Version", "1")
        self.finish("OK")

    def head(self, version: str | None = None) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("Builder-Version", "1")
        self.finish()


class VersionHandler(ApiHandler):
    async def get(self, version: str | None = None) -> None:
        self.send_json(await self.run(self.engine.system.version))


class InfoHandler(ApiHandler):
    async def get(self, version: str | None = None) -> None:
        self.send_json(await self.run(self.engine.system.info))


class DfHandler(ApiHandler):
    async def get(self, version: str | None = None) -> None:
        self.send_json(await self.run(self.engine.system.df))


def event_matches(ev: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    attrs = ev["Actor"]["Attributes"]
    for key, values in filters.items():
        if not values:
            continue
        if key == "type":
            ok = ev["Type"] in values
        elif key == "event":
            ok = ev["Action"] in values or ev["Action"].split(":")[0] in values
        elif key in ("container", "image", "volume", "network"):
            ok = ev["Type"] == key and any(
                ev["Actor"]["ID"].startswith(v) or attrs.get("name") == v or attrs.get("image") == v
                for v in values)
        elif key == "label":
            ok = all((lambda k, s, v: k in attrs and (not s or attrs[k] == v))(*val.partition("="))
                     for val in values)
        elif key in ("scope", "daemon"):
            ok = key != "scope" or "local" in values
        else:
            raise InvalidParameter(f"invalid filter '{key}'")
        if not ok:
            return False
    return True


class EventsHandler(ApiHandler):
    """Streams events as newline-separated JSON objects until `until` or disconnect."""

    async def get(self, version: str | None = None) -> None:
        filters = self.q_filters()
        since = self.q_str("since")
        until = self.q_str("until")
        since_ns = parse_api_time(since) if since else None
        until_ns = parse_api_time(until) if until else None
        for key in filters:
            if key not in ("type", "event", "container", "image", "volume", "network", "label", "scope", "daemon"):
                raise InvalidParameter(f"invalid filter '{key}'")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        def on_event(ev: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, ev)

        past = self.engine.events.subscribe(on_event, since_ns)
        try:
            self.set_header("Content-Type", "application/json")
            self.set_status(200)
            self.flush()
            for ev in past:
                if (until_ns is None or ev["timeNano"] <= until_ns) and event_matches(ev, filters):
                    self.write(json.dumps(ev) + "\n")
            await self.flush()
            while True:
                timeout = None
                if until_ns is not None:
                    timeout = max(0.0, until_ns / 1e9 - time.time())
                try:
                    ev = await asyncio.wait_for(queue.get(), timeout)
                except asyncio.TimeoutError:
                    break
                if until_ns is not None and ev["timeNano"] > until_ns:
                    break
                if event_matches(ev, filters):
                    self.write(json.dumps(ev) + "\n")
                    await self.flush()
        finally:
            self.engine.events.unsubscribe(on_event)
        self.finish()


ROUTES = [
    (route(r"/_ping"), PingHandler),
    (route(r"/version"), VersionHandler),
    (route(r"/info"), InfoHandler),
    (route(r"/system/df"), DfHandler),
    (route(r"/events"), EventsHandler),
]
