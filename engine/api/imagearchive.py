"""`docker save` / `docker load` routes.

Registered before the generic image routes: `/images/{name}` would otherwise
swallow `/images/get`, `/images/load` and `/images/{name}/get`.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO, Any, Protocol

import tornado.iostream

from engine.api.base import NAME, ApiHandler, Route, bind, route
from engine.api.distribution import progress_error
from engine.api.upload import Spooling, UploadHandler
from engine.errors import EngineError
from engine.image.archive import SavedImage


class ImageArchive(Protocol):
    def plan_save(self, names: list[str]) -> list[SavedImage]: ...
    def iter_save(self, plan: list[SavedImage]) -> Iterator[bytes]: ...
    def load(self, src: IO[bytes], quiet: bool = True) -> list[dict[str, Any]]: ...


class Backend(Spooling, Protocol):
    @property
    def image_archive(self) -> ImageArchive: ...


class ImageSaveHandler(ApiHandler[Backend]):
    """Streams the tarball from a thread; names are resolved first so an unknown one is a plain 404."""


    async def get(self, version: str | None = None, ref: str | None = None) -> None:
        names = [ref] if ref is not None else self.get_query_arguments("names")
        archive = self.engine.image_archive
        plan = await self.run(archive.plan_save, names)
        await self.send_stream(lambda _c: archive.iter_save(plan), "application/x-tar")


class ImageLoadHandler(UploadHandler[Backend]):
    """As dockerd, the answer is always a 200 JSON stream: a bad archive is an `errorDetail` message in
    it (the docker CLI prints it and exits 1), after the load has undone whatever it had stored."""

    async def post(self, version: str | None = None) -> None:
        self.set_header("Content-Type", "application/json")
        try:
            messages = await self.in_thread(self.engine.image_archive.load, self.body_file(), self.q_bool("quiet"))
        except EngineError as e:
            self.write(progress_error(e))
        else:
            self.write("".join(json.dumps(m) + "\n" for m in messages))
        try:
            await self.flush()
        except tornado.iostream.StreamClosedError:
            return  # the image is loaded; only the report is lost
        self.finish()


ROUTES: list[Route] = [
    (route(r"/images/get"), ImageSaveHandler),
    (route(r"/images/load"), ImageLoadHandler),
    (route(rf"/images/{NAME}/get"), ImageSaveHandler),
]


def routes(backend: Backend) -> list[tuple[str, type[ApiHandler[Any]], Backend]]:
    return bind(ROUTES, backend)
