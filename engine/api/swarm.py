"""Swarm routes (/swarm, /nodes, /services, /tasks, /secrets, /configs) as a node outside any swarm serves them.

Each handler checks its request the way moby's swarm router does (body,
version and flag queries, filters) and then asks the cluster backend, which
on this engine refuses with dockerd's 503 (see engine/cluster.py). The
order matters to clients: a malformed request is a 400 before the node's
state is looked at, as on dockerd.
"""
from __future__ import annotations

import re
from typing import Any, Protocol, TypeVar

from engine.api.base import ID, ApiHandler, Route, StreamOwner, bind, route
from engine.errors import InvalidParameter
from engine.types.swarm import (
    ConfigSpec,
    InitRequest,
    JoinRequest,
    NodeSpec,
    SecretSpec,
    ServiceSpec,
    Spec,
    UnlockRequest,
)
from pydock_common.apiversion import API_VERSION, version_tuple


class ClusterBackend(Protocol):
    def init(self, listen_addr: str, spec_name: str) -> str: ...
    def join(self, listen_addr: str, remote_addrs: list[str]) -> None: ...
    def leave(self, force: bool) -> None: ...
    def manager(self) -> None: ...


class Backend(StreamOwner, Protocol):
    @property
    def cluster(self) -> ClusterBackend: ...


_GO_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_GO_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def _parse_bool(text: str) -> bool:
    """Go's strconv.ParseBool; raises InvalidParameter with its message."""
    if text in _GO_TRUE:
        return True
    if text in _GO_FALSE:
        return False
    raise InvalidParameter(f'strconv.ParseBool: parsing "{text}": invalid syntax')


def _parse_uint(text: str) -> int:
    """Go's strconv.ParseUint(text, 10, 64); raises InvalidParameter with its message."""
    if not re.fullmatch(r"[0-9]+", text):
        raise InvalidParameter(f'strconv.ParseUint: parsing "{text}": invalid syntax')
    value = int(text)
    if value >= 1 << 64:
        raise InvalidParameter(f'strconv.ParseUint: parsing "{text}": value out of range')
    return value


R = TypeVar("R")


class _Handler(ApiHandler[Backend]):
    def swarm_body(self, cls: type[R]) -> R:
        """The body as moby's swarm router decodes it: an empty one is an EOF error, worded as there."""
        if not self.request.body:
            raise InvalidParameter("got EOF while reading request body")
        return self.decoded(cls)

    def check_bool_query(self, name: str) -> None:
        """A boolean query value, when given, must parse as one (moby's strconv.ParseBool), else its 400."""
        value = self.q_str(name)
        if value:
            try:
                _parse_bool(value)
            except InvalidParameter as e:
                raise InvalidParameter(f"invalid value for {name}: {value}: {e.message}") from None

    def object_version(self, what: str, detailed: bool = True) -> None:
        """The `version` query every swarm update needs (the object's version, not the API's)."""
        raw = self.q_str("version")
        try:
            _parse_uint(raw)
        except InvalidParameter as e:
            raise InvalidParameter(f"invalid {what} version '{raw}': {e.message}" if detailed
                                   else f"invalid {what} version") from None

    def api_version(self) -> tuple[int, ...]:
        return version_tuple(self.path_kwargs.get("version") or API_VERSION)

    def check_logs_streams(self) -> None:
        """swarmLogs: at least one of stdout and stderr, checked before the service or task is looked up."""
        if not (self.q_bool("stdout") or self.q_bool("stderr")):
            raise InvalidParameter("Bad parameters: you must choose at least one stream")

    async def manager(self) -> None:
        await self.run(self.engine.cluster.manager)


class SwarmHandler(_Handler):
    async def get(self, version: str | None = None) -> None:
        await self.manager()


class SwarmInitHandler(_Handler):
    async def post(self, version: str | None = None) -> None:
        req = self.swarm_body(InitRequest)
        self.send_json(await self.run(self.engine.cluster.init, req.listen_addr, req.spec.name))


class SwarmJoinHandler(_Handler):
    async def post(self, version: str | None = None) -> None:
        req = self.swarm_body(JoinRequest)
        await self.run(self.engine.cluster.join, req.listen_addr, req.remote_addrs or [])


class SwarmLeaveHandler(_Handler):
    async def post(self, version: str | None = None) -> None:
        await self.run(self.engine.cluster.leave, self.q_bool("force"))


class SwarmUpdateHandler(_Handler):
    async def post(self, version: str | None = None) -> None:
        self.swarm_body(Spec)
        self.object_version("swarm")
        for flag in ("rotateWorkerToken", "rotateManagerToken", "rotateManagerUnlockKey"):
            value = self.q_str(flag)
            if value and value not in _GO_TRUE | _GO_FALSE:
                raise InvalidParameter(f"invalid value for {flag}: {value}")
        await self.manager()


class SwarmUnlockHandler(_Handler):
    async def post(self, version: str | None = None) -> None:
        self.swarm_body(UnlockRequest)
        await self.manager()


class ListHandler(_Handler):
    """GET /nodes, /tasks, /secrets, /configs: the filters are parsed before the node's state is asked."""

    async def get(self, version: str | None = None) -> None:
        self.q_filters()
        await self.manager()


class ServiceListHandler(_Handler):
    async def get(self, version: str | None = None) -> None:
        self.q_filters()
        if self.api_version() >= (1, 41):
            self.check_bool_query("status")
        await self.manager()


class ObjectHandler(_Handler):
    """GET and DELETE of one node, task, secret or config; also GET/DELETE of one named "create"."""

    async def get(self, version: str | None = None, ref: str = "") -> None:
        await self.manager()

    async def delete(self, version: str | None = None, ref: str = "") -> None:
        await self.manager()


class ServiceHandler(ObjectHandler):
    async def get(self, version: str | None = None, ref: str = "") -> None:
        self.check_bool_query("insertDefaults")
        await self.manager()


class LogsHandler(_Handler):
    async def get(self, version: str | None = None, ref: str = "") -> None:
        self.check_logs_streams()
        await self.manager()


def _create_handler(spec: type[ServiceSpec | SecretSpec | ConfigSpec], base: type[ObjectHandler]) -> type[ObjectHandler]:
    """POST /<kind>/create; GET and DELETE on the same path reach an object named "create", as on dockerd."""

    class CreateHandler(base):  # type: ignore[valid-type,misc]
        async def post(self, version: str | None = None, ref: str = "") -> None:
            body = self.swarm_body(spec)
            if getattr(body, "templating", None) is not None and self.api_version() < (1, 37):
                what = spec.GO_NAME.removeprefix("swarm.").removesuffix("Spec").lower()
                raise InvalidParameter(f"{what} templating is not supported on the specified API version: "
                                       f"{self.path_kwargs.get('version')}")
            await self.manager()

    return CreateHandler


def _update_handler(spec: type[ServiceSpec | NodeSpec | SecretSpec | ConfigSpec], what: str,
                    detailed: bool) -> type[_Handler]:
    """POST /<kind>/{id}/update: body and object version checked, in moby's order."""

    class UpdateHandler(_Handler):
        async def post(self, version: str | None = None, ref: str = "") -> None:
            self.swarm_body(spec)
            self.object_version(what, detailed)
            await self.manager()

    return UpdateHandler


ROUTES: list[Route] = [
    (route(r"/swarm"), SwarmHandler),
    (route(r"/swarm/init"), SwarmInitHandler),
    (route(r"/swarm/join"), SwarmJoinHandler),
    (route(r"/swarm/leave"), SwarmLeaveHandler),
    (route(r"/swarm/unlockkey"), SwarmHandler),
    (route(r"/swarm/update"), SwarmUpdateHandler),
    (route(r"/swarm/unlock"), SwarmUnlockHandler),
    (route(r"/services"), ServiceListHandler),
    (route(r"/services/create"), _create_handler(ServiceSpec, ServiceHandler)),
    (route(rf"/services/{ID}/update"), _update_handler(ServiceSpec, "service", detailed=True)),
    (route(rf"/services/{ID}/logs"), LogsHandler),
    (route(rf"/services/{ID}"), ServiceHandler),
    (route(r"/nodes"), ListHandler),
    (route(rf"/nodes/{ID}/update"), _update_handler(NodeSpec, "node", detailed=True)),
    (route(rf"/nodes/{ID}"), ObjectHandler),
    (route(r"/tasks"), ListHandler),
    (route(rf"/tasks/{ID}/logs"), LogsHandler),
    (route(rf"/tasks/{ID}"), ObjectHandler),
    (route(r"/secrets"), ListHandler),
    (route(r"/secrets/create"), _create_handler(SecretSpec, ObjectHandler)),
    (route(rf"/secrets/{ID}/update"), _update_handler(SecretSpec, "secret", detailed=False)),
    (route(rf"/secrets/{ID}"), ObjectHandler),
    (route(r"/configs"), ListHandler),
    (route(r"/configs/create"), _create_handler(ConfigSpec, ObjectHandler)),
    (route(rf"/configs/{ID}/update"), _update_handler(ConfigSpec, "config", detailed=False)),
    (route(rf"/configs/{ID}"), ObjectHandler),
]


def routes(backend: Backend) -> list[tuple[str, type[ApiHandler[Any]], Backend]]:
    return bind(ROUTES, backend)
