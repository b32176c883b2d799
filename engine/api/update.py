"""`POST /containers/{id}/update` (docker update): resource limits and restart policy."""
from __future__ import annotations

from engine import validate
from engine.api.base import ID, ApiHandler, route


class ContainerUpdateHandler(ApiHandler):
    async def post(self, version: str | None = None, ref: str = "") -> None:
        self.send_json(await self.run(self.engine.containers.update, ref, self.decoded_body(validate.CONTAINER_UPDATE)))


ROUTES = [(route(rf"/containers/{ID}/update"), ContainerUpdateHandler)]
