"""Volume routes: `docker volume create/ls/inspect/rm/prune`."""
from __future__ import annotations

from typing import Any, Protocol

from engine import wire
from engine.api.base import ID, ApiHandler, Route, StreamOwner, bind, route
from engine.filters import Filters
from engine.types.results import Pruned
from engine.types.volume import Volume, VolumeCreateRequest
from pydock_common.apiversion import version_tuple

Json = dict[str, Any]


class Volumes(Protocol):
    def create(self, name: str = "", driver: str = "", opts: dict[str, str] | None = None,
               labels: dict[str, str] | None = None) -> Volume: ...
    def inspect(self, name: str) -> Volume: ...
    def listing(self, filters: Filters | None = None) -> list[Volume]: ...
    def remove(self, name: str, force: bool = False) -> None: ...
    def prune(self, filters: Filters | None = None, all_by_default: bool = False) -> Pruned: ...


class Backend(StreamOwner, Protocol):
    @property
    def volumes(self) -> Volumes: ...


class VolumeHandler(ApiHandler[Backend]):
    async def get(self, version: str | None = None, ref: str = "") -> None:
        self.send_json(wire.encode(await self.run(self.engine.volumes.inspect, ref)))

    async def delete(self, version: str | None = None, ref: str = "") -> None:
        await self.run(self.engine.volumes.remove, ref, self.q_bool("force"))
        self.set_status(204)
        self.finish()


class VolumeCreateHandler(VolumeHandler):
    """POST creates; GET and DELETE reach a volume that happens to be named "create"."""

    async def post(self, version: str | None = None, ref: str = "") -> None:
        req = self.decoded(VolumeCreateRequest, required=False)
        self.policy.check_volume_create(req)
        vol = await self.run(self.engine.volumes.create, req.name, req.driver,
                             req.driver_opts, req.labels)  # null stays null, as in Docker
        self.send_json(wire.encode(vol), 201)


class VolumePruneHandler(VolumeHandler):
    async def post(self, version: str | None = None, ref: str = "") -> None:
        # before API 1.42, prune took every unused volume, not only anonymous ones
        before_1_42 = bool(version) and version_tuple(version or "") < (1, 42)
        pruned = await self.in_thread(self.engine.volumes.prune, self.q_filters(), before_1_42)
        self.send_json({"VolumesDeleted": pruned.deleted, "SpaceReclaimed": pruned.reclaimed})


class VolumeListHandler(ApiHandler[Backend]):
    async def get(self, version: str | None = None) -> None:
        volumes = await self.run(self.engine.volumes.listing, self.q_filters())
        self.send_json({"Volumes": [wire.encode(v) for v in volumes], "Warnings": None})


ROUTES: list[Route] = [
    (route(r"/volumes"), VolumeListHandler),
    (route(r"/volumes/(?P<ref>create)"), VolumeCreateHandler),
    (route(r"/volumes/(?P<ref>prune)"), VolumePruneHandler),
    (route(rf"/volumes/{ID}"), VolumeHandler),
]


def routes(backend: Backend) -> list[tuple[str, type[ApiHandler[Any]], Backend]]:
    return bind(ROUTES, backend)
