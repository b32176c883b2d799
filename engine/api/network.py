"""Network routes: /networks (list, inspect, create, remove, connect, disconnect, prune)."""
from __future__ import annotations

from typing import Any, Protocol

from engine.api.base import ID, ApiHandler, Route, StreamOwner, bind, route
from engine.api.network_json import network_json
from engine.errors import InvalidParameter
from engine.filters import Filters
from engine.network.types import NetworkView
from engine.types.network import EndpointSettings, NetworkConnect, NetworkCreateRequest, NetworkDisconnect
from engine.types.results import Pruned

Json = dict[str, Any]


class Networks(Protocol):
    """The network service as this router uses it."""

    def summaries(self, filters: Filters | None = None) -> list[NetworkView]: ...
    def inspect(self, ref: str) -> NetworkView: ...
    def create(self, body: NetworkCreateRequest) -> str: ...
    def remove(self, ref: str) -> None: ...
    def connect(self, net_ref: str, container_ref: str, config: EndpointSettings) -> None: ...
    def disconnect(self, net_ref: str, container_ref: str, force: bool = False) -> None: ...
    def prune(self, filters: Filters) -> Pruned: ...


class Backend(StreamOwner, Protocol):
    @property
    def network(self) -> Networks: ...


class _Handler(ApiHandler[Backend]):
    pass


class NetworkListHandler(_Handler):
    async def get(self, version: str | None = None) -> None:
        views = await self.run(self.engine.network.summaries, self.q_filters())
        self.send_json([network_json(v) for v in views])


class NetworkHandler(_Handler):
    async def get(self, version: str | None = None, ref: str = "") -> None:
        self.send_json(network_json(await self.run(self.engine.network.inspect, ref)))

    async def delete(self, version: str | None = None, ref: str = "") -> None:
        await self.run(self.engine.network.remove, ref)
        self.set_status(204)
        self.finish()


class NetworkCreateHandler(_Handler):
    async def post(self, version: str | None = None) -> None:
        net_id = await self.run(self.engine.network.create, self.decoded(NetworkCreateRequest))
        self.send_json({"Id": net_id, "Warning": ""}, 201)


def _container(ref: str) -> str:
    if not ref:
        raise InvalidParameter("Container is required")
    return ref


class NetworkConnectHandler(_Handler):
    async def post(self, version: str | None = None, ref: str = "") -> None:
        req = self.decoded(NetworkConnect)
        await self.run(self.engine.network.connect, ref, _container(req.container),
                       req.endpoint_config or EndpointSettings())
        self.set_status(200)
        self.finish()


class NetworkDisconnectHandler(_Handler):
    async def post(self, version: str | None = None, ref: str = "") -> None:
        req = self.decoded(NetworkDisconnect)
        await self.run(self.engine.network.disconnect, ref, _container(req.container), req.force)
        self.set_status(200)
        self.finish()


class NetworkPruneHandler(_Handler):
    async def post(self, version: str | None = None) -> None:
        pruned = await self.run(self.engine.network.prune, self.q_filters())
        self.send_json({"NetworksDeleted": pruned.deleted or None})


ROUTES: list[Route] = [
    (route(r"/networks/?"), NetworkListHandler),
    (route(r"/networks/create"), NetworkCreateHandler),
    (route(r"/networks/prune"), NetworkPruneHandler),
    (route(rf"/networks/{ID}/connect"), NetworkConnectHandler),
    (route(rf"/networks/{ID}/disconnect"), NetworkDisconnectHandler),
    (route(rf"/networks/{ID}"), NetworkHandler),
]


def routes(backend: Backend) -> list[tuple[str, type[ApiHandler[Any]], Backend]]:
    return bind(ROUTES, backend)
