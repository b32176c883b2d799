"""Container lifecycle routes (streams live in streams.py)."""
from __future__ import annotations

from typing import Any, Protocol

from engine.api.base import ID, ApiHandler, Route, StreamOwner, bind, route
from engine.api.container_json import inspect_json, summary_json
from engine.api.network_json import networks_json, ports_summary, settings_json
from engine.container.record import ContainerID, ContainerRecord
from engine.distribution.plan import Platform
from engine.errors import InvalidParameter
from engine.filters import Filters
from engine.network.types import Networking
from engine.types.container import ContainerCreateRequest, HostConfig
from engine.types.results import Pruned

Json = dict[str, Any]


class ContainerViews(Protocol):
    """What a container's JSON is built from: its record, sizes, and its network's live settings."""

    @property
    def containers(self) -> ContainerRecords: ...
    @property
    def network(self) -> NetworkViews: ...
    @property
    def execs(self) -> LiveExecs: ...


class ContainerRecords(Protocol):
    def get(self, ref: str) -> ContainerRecord: ...
    def listing(self, all_: bool = False, limit: int = -1, filters: Filters | None = None) -> list[ContainerRecord]: ...
    def size_rw(self, c: ContainerRecord) -> int: ...
    def size_root_fs(self, c: ContainerRecord) -> int: ...


class NetworkViews(Protocol):
    def networking(self, c: ContainerRecord) -> Networking: ...
    def remove_link(self, name: str) -> None: ...
    def networkings(self, cs: list[ContainerRecord]) -> dict[str, Networking]: ...
    def inspect_links(self, c: ContainerRecord) -> list[str] | None: ...


def inspect(views: ContainerViews, ref: str, size: bool) -> Json:
    """`docker inspect`: the record with what the network and exec services know live."""
    c = views.containers.get(ref)
    sizes = (views.containers.size_rw(c), views.containers.size_root_fs(c)) if size else None
    return inspect_json(c, settings_json(views.network.networking(c)), views.execs.live_ids(c.id), sizes,
                        views.network.inspect_links(c))


def summaries(views: ContainerViews, all_: bool, limit: int, size: bool, filters: Filters) -> list[Json]:
    """`docker ps`: from the stored records and the network tables read once for all rows, never runc or a
    container's files (but the writable layer's, when the client asks for sizes)."""
    listed = views.containers.listing(all_, limit, filters)
    networking = views.network.networkings(listed)
    return [summary_json(c, ports_summary(n), networks_json(n), views.containers.size_rw(c) if size else None)
            for c in listed for n in [networking[c.id]]]


class ContainerLifecycle(ContainerRecords, Protocol):
    """The container service as this router uses it."""

    def create(self, req: ContainerCreateRequest, name: str = "",
               intermediate: bool = False) -> tuple[ContainerID, list[str]]: ...
    def host_config_of(self, ref: str) -> HostConfig | None: ...
    def start(self, ref: str) -> None: ...
    def stop(self, ref: str, timeout: int | None = None, sig: str | None = None) -> None: ...
    def restart(self, ref: str, timeout: int | None = None) -> None: ...
    def kill(self, ref: str, sig: str | int | None = None) -> None: ...
    def pause(self, ref: str) -> None: ...
    def unpause(self, ref: str) -> None: ...
    def rename(self, ref: str, new_name: str) -> None: ...
    def resize(self, ref: str, h: int, w: int) -> None: ...
    def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None: ...
    def prune(self, filters: Filters | None = None) -> Pruned: ...


class LiveExecs(Protocol):
    def live_ids(self, cid: str) -> list[str]: ...


class Backend(StreamOwner, Protocol):
    @property
    def containers(self) -> ContainerLifecycle: ...
    @property
    def execs(self) -> LiveExecs: ...
    @property
    def network(self) -> NetworkViews: ...


class _Handler(ApiHandler[Backend]):
    pass


class ContainerCreateHandler(_Handler):
    async def post(self, version: str | None = None) -> None:
        req = self.decoded(ContainerCreateRequest)
        Platform.parse(self.q_str("platform"))  # only checked: pydock runs its own platform's images
        self.policy.check_container_create(req)
        name = self.q_str("name")

        def create() -> tuple[str, list[str]]:  # one trip to the pool, on every `docker run`'s path
            self.policy.check_container_sharing(req, self.engine.containers.host_config_of)
            return self.engine.containers.create(req, name)

        cid, warnings = await self.run(create)
        self.send_json({"Id": cid, "Warnings": warnings}, 201)


class ContainerListHandler(_Handler):
    async def get(self, version: str | None = None) -> None:
        self.send_json(await self.run(summaries, self.engine, self.q_bool("all"), self.q_int("limit", -1),
                                      self.q_bool("size"), self.q_filters()))


class ContainerInspectHandler(_Handler):
    async def get(self, version: str | None = None, ref: str = "") -> None:
        self.send_json(await self.run(inspect, self.engine, ref, self.q_bool("size")))


class _NoContent(_Handler):
    def done(self) -> None:
        self.set_status(204)
        self.finish()


class ContainerStartHandler(_NoContent):
    async def post(self, version: str | None = None, ref: str = "") -> None:
        def start() -> None:  # one trip to the pool, on every `docker run`'s path
            self.policy.check_container_use(lambda: self.engine.containers.host_config_of(ref))
            self.engine.containers.start(ref)

        await self.run(start)
        self.done()


class ContainerStopHandler(_NoContent):
    async def post(self, version: str | None = None, ref: str = "") -> None:
        await self.in_thread(self.engine.containers.stop, ref, self.q_int("t"), self.q_str("signal") or None)
        self.done()


class ContainerRestartHandler(_NoContent):
    async def post(self, version: str | None = None, ref: str = "") -> None:
        await self.run(self.policy.check_container_use, lambda: self.engine.containers.host_config_of(ref))
        await self.in_thread(self.engine.containers.restart, ref, self.q_int("t"))
        self.done()


class ContainerKillHandler(_NoContent):
    async def post(self, version: str | None = None, ref: str = "") -> None:
        await self.in_thread(self.engine.containers.kill, ref, self.q_str("signal") or None)
        self.done()


class ContainerPauseHandler(_NoContent):
    async def post(self, version: str | None = None, ref: str = "") -> None:
        await self.run(self.engine.containers.pause, ref)
        self.done()


class ContainerUnpauseHandler(_NoContent):
    async def post(self, version: str | None = None, ref: str = "") -> None:
        await self.run(self.engine.containers.unpause, ref)
        self.done()


class ContainerRenameHandler(_NoContent):
    async def post(self, version: str | None = None, ref: str = "") -> None:
        await self.run(self.engine.containers.rename, ref, self.q_str("name"))
        self.done()


class ContainerResizeHandler(_Handler):
    async def post(self, version: str | None = None, ref: str = "") -> None:
        h, w = self.q_int("h", 0), self.q_int("w", 0)
        if not h or not w or h < 0 or w < 0:
            raise InvalidParameter("invalid height or width")
        await self.run(self.engine.containers.resize, ref, h, w)
        self.set_status(200)
        self.finish()


class ContainerDeleteHandler(_NoContent):
    async def delete(self, version: str | None = None, ref: str = "") -> None:
        if self.q_bool("link"):  # `docker rm --link /parent/alias` removes a legacy link, not a container
            await self.run(self.engine.network.remove_link, ref)
        else:
            await self.in_thread(self.engine.containers.remove, ref, self.q_bool("force"), self.q_bool("v"))
        self.done()


class ContainerPruneHandler(_Handler):
    async def post(self, version: str | None = None) -> None:
        pruned = await self.in_thread(self.engine.containers.prune, self.q_filters())
        self.send_json({"ContainersDeleted": pruned.deleted or None, "SpaceReclaimed": pruned.reclaimed})


ROUTES: list[Route] = [
    (route(r"/containers/create"), ContainerCreateHandler),
    (route(r"/containers/json"), ContainerListHandler),
    (route(r"/containers/prune"), ContainerPruneHandler),
    (route(rf"/containers/{ID}/json"), ContainerInspectHandler),
    (route(rf"/containers/{ID}/start"), ContainerStartHandler),
    (route(rf"/containers/{ID}/stop"), ContainerStopHandler),
    (route(rf"/containers/{ID}/restart"), ContainerRestartHandler),
    (route(rf"/containers/{ID}/kill"), ContainerKillHandler),
    (route(rf"/containers/{ID}/pause"), ContainerPauseHandler),
    (route(rf"/containers/{ID}/unpause"), ContainerUnpauseHandler),
    (route(rf"/containers/{ID}/rename"), ContainerRenameHandler),
    (route(rf"/containers/{ID}/resize"), ContainerResizeHandler),
    (route(rf"/containers/{ID}"), ContainerDeleteHandler),
]
# a legacy link's name, "parent/alias" (`docker rm --link /parent/alias`): it would shadow every
# /containers/{id}/<verb> route, so the app puts it after all the others
LINK_ROUTES: list[Route] = [(route(r"/containers/(?P<ref>[^/]+/[^/]+)"), ContainerDeleteHandler)]


def routes(backend: Backend) -> list[tuple[str, type[ApiHandler[Any]], Backend]]:
    return bind(ROUTES, backend)


def link_routes(backend: Backend) -> list[tuple[str, type[ApiHandler[Any]], Backend]]:
    return bind(LINK_ROUTES, backend)
