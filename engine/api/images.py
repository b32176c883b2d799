"""Image routes."""
from __future__ import annotations

import json
from collections.abc import Iterable
from typing import IO, Any, Protocol

from engine.api import distribution
from engine.api.base import NAME, ApiHandler, Route, bind, route
from engine.api.distribution import ProgressStream, pull
from engine.api.image_json import deletion_json, history_json, inspect_json, summary_json
from engine.api.upload import UploadHandler
from engine.errors import InvalidParameter
from engine.filters import Filters
from engine.image.views import HistoryEntry, ImageDetails, ImageSummary
from engine.types.results import ImageDeletion

Json = dict[str, Any]


class Images(Protocol):
    """The image service as the image routes use it."""

    def summaries(self, all_: bool = False, filters: Filters | None = None) -> list[ImageSummary]: ...
    def import_tar(self, src: IO[bytes], repo: str = "", tag: str = "", changes: Iterable[str] = (),
                   message: str = "", platform: str = "") -> str: ...
    def inspect(self, ref: str) -> ImageDetails: ...
    def history(self, ref: str) -> list[HistoryEntry]: ...
    def tag(self, image_ref: str, repo: str, tag: str = "") -> str: ...
    def remove(self, ref: str, force: bool = False, prune: bool = True) -> list[ImageDeletion]: ...
    def prune(self, filters: Filters | None = None) -> tuple[list[ImageDeletion], int]: ...


class Backend(distribution.Backend, Protocol):
    """`POST /images/create` pulls, so the image routes need the distribution service too."""

    @property
    def images(self) -> Images: ...


class ImageListHandler(ApiHandler[Backend]):
    async def get(self, version: str | None = None) -> None:
        images = await self.run(self.engine.images.summaries, self.q_bool("all"), self.q_filters())
        self.send_json([summary_json(i) for i in images])


class ImageCreateHandler(ProgressStream[Backend], UploadHandler[Backend]):
    """`docker import` (fromSrc) and `docker pull` (fromImage)."""

    async def post(self, version: str | None = None) -> None:
        src = self.q_str("fromSrc")
        if self.q_str("fromImage"):
            await pull(self)
            return
        if src != "-":
            if not src:
                raise InvalidParameter("fromSrc or fromImage is required")
            raise InvalidParameter("importing from a URL needs network access; pipe the tarball instead (fromSrc=-)")
        changes = self.get_query_arguments("changes")
        image_id = await self.run(self.engine.images.import_tar, self.body_file(), self.q_str("repo"),
                                  self.q_str("tag"), changes, self.q_str("message"), self.q_str("platform"))
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"status": image_id}) + "\n")


class ImageInspectHandler(ApiHandler[Backend]):
    async def get(self, version: str | None = None, ref: str = "") -> None:
        self.send_json(inspect_json(await self.run(self.engine.images.inspect, ref)))


class ImageHistoryHandler(ApiHandler[Backend]):
    async def get(self, version: str | None = None, ref: str = "") -> None:
        self.send_json([history_json(h) for h in await self.run(self.engine.images.history, ref)])


class ImageTagHandler(ApiHandler[Backend]):
    async def post(self, version: str | None = None, ref: str = "") -> None:
        repo = self.q_str("repo")
        if not repo:
            raise InvalidParameter("repository name must have at least one component")
        await self.run(self.engine.images.tag, ref, repo, self.q_str("tag"))
        self.set_status(201)
        self.finish()


class ImageDeleteHandler(ApiHandler[Backend]):
    async def delete(self, version: str | None = None, ref: str = "") -> None:
        steps = await self.run(self.engine.images.remove, ref, self.q_bool("force"), not self.q_bool("noprune"))
        self.send_json([deletion_json(d) for d in steps])


class ImagePruneHandler(ApiHandler[Backend]):
    async def post(self, version: str | None = None) -> None:
        steps, reclaimed = await self.run(self.engine.images.prune, self.q_filters())
        self.send_json({"ImagesDeleted": [deletion_json(d) for d in steps] or None, "SpaceReclaimed": reclaimed})


ROUTES: list[Route] = [
    (route(r"/images/json"), ImageListHandler),
    (route(r"/images/create"), ImageCreateHandler),
    (route(r"/images/prune"), ImagePruneHandler),
    (route(rf"/images/{NAME}/json"), ImageInspectHandler),
    (route(rf"/images/{NAME}/history"), ImageHistoryHandler),
    (route(rf"/images/{NAME}/tag"), ImageTagHandler),
    (route(rf"/images/{NAME}"), ImageDeleteHandler),
]


def routes(backend: Backend) -> list[tuple[str, type[ApiHandler[Any]], Backend]]:
    return bind(ROUTES, backend)
