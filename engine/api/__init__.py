"""Docker Engine API routes as tornado handlers, mountable under any prefix."""
from __future__ import annotations

from typing import Any

import tornado.web

from ..daemon import Engine
from . import archive, build, containers, distribution, imagearchive, images, stats, streams, system
from . import network, update, volumes
from . import exec as exec_routes


def make_routes(engine: Engine, prefix: str = "", base: type | None = None) -> list[tuple[str, type, dict[str, Any]]]:
    """All API routes under `prefix`.

    `base`, when given, is mixed in front of every handler class: the Jupyter
    extension passes its authenticated handler base so the same handlers run
    behind Jupyter's login without copies.
    """
    out = []
    for module in (system, imagearchive, distribution, images, containers, streams, archive, stats, build, update,
                   network, volumes, exec_routes):
        for pattern, handler in module.ROUTES:
            cls = type(handler.__name__, (base, handler), {}) if base else handler
            out.append((prefix + pattern, cls, {"engine": engine}))
    return out


class NotFoundHandler(tornado.web.RequestHandler):
    """dockerd's answer for a route it does not have, so clients print a message, not HTML."""

    def prepare(self) -> None:
        self.set_status(404)
        self.set_header("Content-Type", "application/json")
        self.finish('{"message":"page not found"}\n')


def make_app(engine: Engine) -> tornado.web.Application:
    return tornado.web.Application(make_routes(engine), default_handler_class=NotFoundHandler)  # type: ignore[arg-type]
