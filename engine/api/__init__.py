"""Docker Engine API routes as tornado handlers, mountable under any prefix."""
from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Callable
from typing import Any, TypeVar

import tornado.web

from engine import wire
from engine.api import (
    archive,
    build,
    containers,
    distribution,
    imagearchive,
    images,
    network,
    stats,
    streams,
    swarm,
    system,
    update,
    volumes,
)
from engine.api import exec as exec_routes
from engine.api.base import ID, route
from engine.engine import Engine
from engine.errors import InvalidParameter
from engine.hostpolicy import OPEN, HostConfigOf, HostPolicy
from engine.types.container import ContainerCreateRequest, ExecConfig, HostConfig
from engine.types.volume import VolumeCreateRequest

R = TypeVar("R")


def make_routes(engine: Engine, prefix: str = "", base: type | None = None,
                policy: HostPolicy = OPEN) -> list[tuple[str, type, dict[str, Any]]]:
    """All API routes under `prefix`.

    `base`, when given, is mixed in front of every handler class: the Jupyter
    extension passes its authenticated handler base so the same handlers run
    behind Jupyter's login without copies. `policy` limits what requests may
    ask of the host (pydockd: none, as Docker).
    """
    tables: list[list[tuple[str, type, Any]]] = [
        system.routes(engine), imagearchive.routes(engine), distribution.routes(engine), images.routes(engine),
        containers.routes(engine), streams.routes(engine), archive.routes(engine), stats.routes(engine),
        build.routes(engine), update.routes(engine), network.routes(engine), volumes.routes(engine),
        exec_routes.routes(engine), swarm.routes(engine), containers.link_routes(engine)]
    out = []
    for table in tables:
        for pattern, handler, backend in table:
            cls = type(handler.__name__, (base, handler), {}) if base else handler
            out.append((prefix + pattern, cls, {"engine": backend, "policy": policy}))
    return out


# requests a host policy inspects, for a server that forwards them to pydockd instead of handling them;
# each check gets the route's match, the body and a way to inspect a container
_Check = Callable[[HostPolicy, "re.Match[str]", bytes, HostConfigOf], None]
_FORWARDED_CHECKS: list[tuple[re.Pattern[str], _Check]] = [
    (re.compile(route(r"/containers/create")), lambda p, m, body, inspect: _check_create(p, body, inspect)),
    (re.compile(route(rf"/containers/{ID}/exec")), lambda p, m, body, inspect: _check_exec(p, m["ref"], body, inspect)),
    (re.compile(route(rf"/containers/{ID}/(?:attach|start|restart|archive)")),
     lambda p, m, body, host_of: p.check_container_use(lambda: host_of(m["ref"]))),
    (re.compile(route(r"/volumes/create")),
     lambda p, m, body, host_of: _checked(body, VolumeCreateRequest, p.check_volume_create)),
]


def _check_create(policy: HostPolicy, body: bytes, host_of: HostConfigOf) -> None:
    def check(req: ContainerCreateRequest) -> None:
        policy.check_container_create(req)
        policy.check_container_sharing(req, host_of)
    _checked(body, ContainerCreateRequest, check)


def _check_exec(policy: HostPolicy, ref: str, body: bytes, host_of: HostConfigOf) -> None:
    _checked(body, ExecConfig, policy.check_exec_create)
    policy.check_container_use(lambda: host_of(ref))


def _checked(body: bytes, cls: type[R], check: Callable[[R], None]) -> None:
    """Run `check` on the decoded body; one pydockd cannot decode is refused there with 400: nothing to check."""
    try:
        req = wire.decode(cls, json.loads(body) if body else None)
    except (ValueError, RecursionError, InvalidParameter):
        return
    check(req)


def check_forwarded(policy: HostPolicy, method: str, path: str, query: str, body: bytes,
                    inspect: Callable[[str], dict[str, Any]]) -> None:
    """Apply `policy` to a request bound for pydockd, matched with the very routes pydockd serves.

    `inspect` answers a container's inspect data (`{}` when pydockd has no such
    container: pydockd then answers the request itself with its 404).
    """
    def host_of(ref: str) -> HostConfig | None:
        doc = inspect(ref)
        return wire.decode(HostConfig, doc.get("HostConfig")) if doc else None

    if method not in ("POST", "PUT"):
        return
    if re.fullmatch(route(r"/build"), path):
        policy.check_build((urllib.parse.parse_qs(query).get("networkmode") or ["default"])[0])
        return
    for pattern, check in _FORWARDED_CHECKS:
        match = pattern.fullmatch(path)
        if match:
            check(policy, match, body, host_of)
            return


class NotFoundHandler(tornado.web.RequestHandler):
    """dockerd's answer for a route it does not have, so clients print a message, not HTML."""

    def prepare(self) -> None:
        self.set_status(404)
        self.set_header("Content-Type", "application/json")
        self.finish('{"message":"page not found"}\n')


def make_app(engine: Engine) -> tornado.web.Application:
    return tornado.web.Application(make_routes(engine), default_handler_class=NotFoundHandler)
