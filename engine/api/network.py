"""Network routes: /networks (list, inspect, create, remove, connect, disconnect, prune)."""
from __future__ import annotations

from engine import validate
from engine.api.base import ID, ApiHandler, route
from engine.errors import InvalidParameter


class NetworkListHandler(ApiHandler):
    async def get(self, version: str | None = None) -> None:
        self.send_json(await self.run(self.engine.network.list, self.q_filters_dict()))


class NetworkHandler(ApiHandler):
    async def get(self, version: str | None = None, ref: str = "") -> None:
        self.send_json(await self.run(self.engine.network.inspect, ref))

    async def delete(self, version: str | None = None, ref: str = "") -> None:
        await self.run(self.engine.network.remove, ref)
        self.set_status(204)
        self.finish()


class NetworkCreateHandler(ApiHandler):
    async def post(self, version: str | None = None) -> None:
        self.send_json(await self.run(self.engine.network.create, self.decoded_body(validate.NETWORK_CREATE)), 201)


def _container(body: object) -> str:
    if not isinstance(body, dict) or not isinstance(body.get("Container"), str) or not body["Container"]:
        raise InvalidParameter("Container is required")
    return body["Container"]


class NetworkConnectHandler(ApiHandler):
    async def post(self, version: str | None = None, ref: str = "") -> None:
        body = self.decoded_body(validate.NETWORK_CONNECT)
        container = _container(body)
        await self.run(self.engine.network.connect, ref, container, body.get("EndpointConfig") or {})
        self.set_status(200)
        self.finish()


class NetworkDisconnectHandler(ApiHandler):
    async def post(self, version: str | None = None, ref: str = "") -> None:
        body = self.decoded_body(validate.NETWORK_DISCONNECT)
        await self.run(self.engine.network.disconnect, ref, _container(body), bool(body.get("Force")))
        self.set_status(200)
        self.finish()


class NetworkPruneHandler(ApiHandler):
    async def post(self, version: str | None = None) -> None:
        self.send_json(await self.run(self.engine.network.prune, self.q_filters_dict()))


ROUTES = [
    (route(r"/networks/?"), NetworkListHandler),
    (route(r"/networks/create"), NetworkCreateHandler),
    (route(r"/networks/prune"), NetworkPruneHandler),
    (route(rf"/networks/{ID}/connect"), NetworkConnectHandler),
    (route(rf"/networks/{ID}/disconnect"), NetworkDisconnectHandler),
    (route(rf"/networks/{ID}"), NetworkHandler),
]
