"""Image routes."""
from __future__ import annotations

import json

from engine.api.base import NAME, ApiHandler, route
from engine.api.distribution import ProgressStream, pull
from engine.api.upload import UploadHandler
from engine.errors import InvalidParameter


class ImageListHandler(ApiHandler):
    async def get(self, version: str | None = None) -> None:
        self.send_json(await self.run(self.engine.images.summaries, self.q_bool("all"), self.q_filters()))


class ImageCreateHandler(ProgressStream, UploadHandler):
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


class ImageInspectHandler(ApiHandler):
    async def get(self, version: str | None = None, ref: str = "") -> None:
        self.send_json(await self.run(self.engine.images.inspect, ref))


class ImageHistoryHandler(ApiHandler):
    async def get(self, version: str | None = None, ref: str = "") -> None:
        self.send_json(await self.run(self.engine.images.history, ref))


class ImageTagHandler(ApiHandler):
    async def post(self, version: str | None = None, ref: str = "") -> None:
        repo = self.q_str("repo")
        if not repo:
            raise InvalidParameter("repository name must have at least one component")
        await self.run(self.engine.images.tag, ref, repo, self.q_str("tag"))
        self.set_status(201)
        self.finish()


class ImageDeleteHandler(ApiHandler):
    async def delete(self, version: str | None = None, ref: str = "") -> None:
        self.send_json(await self.run(self.engine.images.remove, ref, self.q_bool("force"),
                                      not self.q_bool("noprune")))


class ImagePruneHandler(ApiHandler):
    async def post(self, version: str | None = None) -> None:
        self.send_json(await self.run(self.engine.images.prune, self.q_filters()))


ROUTES = [
    (route(r"/images/json"), ImageListHandler),
    (route(r"/images/create"), ImageCreateHandler),
    (route(r"/images/prune"), ImagePruneHandler),
    (route(rf"/images/{NAME}/json"), ImageInspectHandler),
    (route(rf"/images/{NAME}/history"), ImageHistoryHandler),
    (route(rf"/images/{NAME}/tag"), ImageTagHandler),
    (route(rf"/images/{NAME}"), ImageDeleteHandler),
]
