"""`POST /containers/{id}/update` (docker update): resource limits and restart policy."""
from __future__ import annotations

from typing import Any, Protocol

from engine.api.base import ID, ApiHandler, Route, StreamOwner, bind, route
from engine.types.container import UpdateConfig


class ContainerUpdater(Protocol):
    def update(self, ref: str, upd: UpdateConfig) -> list[str]: ...


class Backend(StreamOwner, Protocol):
    @property
    def containers(self) -> ContainerUpdater: ...


class _Handler(ApiHandler[Backend]):
    pass


class ContainerUpdateHandler(_Handler):
    async def post(self, version: str | None = None, ref: str = "") -> None:
        warnings = await self.run(self.engine.containers.update, ref, self.decoded(UpdateConfig))
        self.send_json({"Warnings": warnings})


ROUTES: list[Route] = [(route(rf"/containers/{ID}/update"), ContainerUpdateHandler)]


def routes(backend: Backend) -> list[tuple[str, type[ApiHandler[Any]], Backend]]:
    return bind(ROUTES, backend)
