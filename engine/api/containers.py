"""Container lifecycle routes (streams live in streams.py)."""
from __future__ import annotations

from typing import Any, Protocol

from engine import validate
from engine.api.base import ID, ApiHandler, Route, StreamOwner, bind, route
from engine.distribution.plan import Platform
from engine.errors import InvalidParameter, NotFound
from engine.filters import Filters

Json = dict[str, Any]


class ContainerLifecycle(Protocol):
    """The container service as this router uses it."""

    def create(self, body: Json, name: str = "", intermediate: bool = False) -> Json: ...
    def get(self, ref: str) -> Json: ...
    def summaries(self, all_: bool = False, limit: int = -1, size: bool = False,
                  filters: Filters | None = None) -> list[Json]: ...
    def inspect(self, ref: str, size: bool = False) -> Json: ...
    def start(self, ref: str) -> None: ...
    def stop(self, ref: str, timeout: int | None = None, sig: str | None = None) -> None: ...
    def restart(self, ref: str, timeout: int | None = None) -> None: ...
    def kill(self, ref: str, sig: str | int | None = None) -> None: ...
    def pause(self, ref: str) -> None: ...
    def unpause(self, ref: str) -> None: ...
    def rename(self, ref: str, new_name: str) -> None: ...
    def resize(self, ref: str, h: int, w: int) -> None: ...
    def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None: ...
    def prune(self, filters: Filters | None = None) -> Json: ...


class LiveExecs(Protocol):
    def live_ids(self, cid: str) -> list[str]: ...


class Backend(StreamOwner, Protocol):
    @property
    def containers(self) -> ContainerLifecycle: ...
    @property
    def execs(self) -> LiveExecs: ...


class _Handler(ApiHandler[Backend]):
    pass


class ContainerCreateHandler(_Handler):
    async def post(self, version: str | None = None) -> None:
        body = self.decoded_body(validate.CONTAINER_CREATE)
        Platform.parse(self.q_str("platform"))  # only checked: pydock runs its own platform's images
        self.policy.check_container_create(body)
        await self.run(self.policy.check_container_sharing, body, self._inspect_or_empty)
        self.send_json(await self.run(self.engine.containers.create, body, self.q_str("name")), 201)


    def _inspect_or_empty(self, ref: str) -> dict[str, Any]:
        """A missing container is the engine's own error to report, not the policy's."""
        try:
            return self.engine.containers.get(ref)
        except NotFound:
            return {}


class ContainerListHandler(_Handler):
    async def get(self, version: str | None = None) -> None:
        self.send_json(await self.run(self.engine.containers.summaries, self.q_bool("all"), self.q_int("limit", -1),
                                      self.q_bool("size"), self.q_filters()))


class ContainerInspectHandler(_Handler):
    async def get(self, version: str | None = None, ref: str = "") -> None:
        out = await self.run(self.engine.containers.inspect, ref, self.q_bool("size"))
        out["ExecIDs"] = self.engine.execs.live_ids(out["Id"]) or None  # exec instances live in the exec service
        self.send_json(out)


class _NoContent(_Handler):
    def done(self) -> None:
        self.set_status(204)
        self.finish()


class ContainerStartHandler(_NoContent):
    async def post(self, version: str | None = None, ref: str = "") -> None:
        await self.run(self.policy.check_container_use, lambda: self.engine.containers.get(ref))
        await self.run(self.engine.containers.start, ref)
        self.done()


class ContainerStopHandler(_NoContent):
    async def post(self, version: str | None = None, ref: str = "") -> None:
        await self.in_thread(self.engine.containers.stop, ref, self.q_int("t"), self.q_str("signal") or None)
        self.done()


class ContainerRestartHandler(_NoContent):
    async def post(self, version: str | None = None, ref: str = "") -> None:
        await self.run(self.policy.check_container_use, lambda: self.engine.containers.get(ref))
        await self.in_thread(self.engine.containers.restart, ref, self.q_int("t"))
        self.done()


class ContainerKillHandler(_NoContent):
    async def post(self, version: str | None = None, ref: str = "") -> None:
        await self.run(self.engine.containers.kill, ref, self.q_str("signal") or None)
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
        await self.in_thread(self.engine.containers.remove, ref, self.q_bool("force"), self.q_bool("v"))
        self.done()


class ContainerPruneHandler(_Handler):
    async def post(self, version: str | None = None) -> None:
        self.send_json(await self.in_thread(self.engine.containers.prune, self.q_filters()))


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


def routes(backend: Backend) -> list[tuple[str, type[ApiHandler[Any]], Backend]]:
    return bind(ROUTES, backend)
