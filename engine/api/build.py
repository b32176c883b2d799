"""`POST /build`: the classic builder's API (tar context in, JSON message stream out)."""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import IO, Any, Protocol

import tornado.iostream

from engine.api.base import ApiHandler, Route, bind, route
from engine.api.upload import Spooling, UploadHandler
from engine.build.builder import Build, BuildError, BuildOptions
from engine.errors import EngineError, InvalidParameter, Unsupported
from engine.types.results import Pruned
from pydock_common import reference


class Builder(Protocol):
    def prepare(self, body: IO[bytes], options: BuildOptions) -> Build: ...
    def run(self, build: Build, cancel: threading.Event) -> Iterator[dict[str, Any]]: ...
    def prune_cache(self) -> Pruned: ...


class Backend(Spooling, Protocol):
    @property
    def builder(self) -> Builder: ...


def error_message(e: EngineError) -> bytes:
    """Docker's in-stream error; the docker CLI exits with `code` (1 when absent)."""
    detail: dict[str, Any] = {"message": e.message}
    code = getattr(e, "code", 0)
    if code:
        detail = {"code": code, "message": e.message}
    return json.dumps({"errorDetail": detail, "error": e.message}).encode() + b"\r\n"


class BuildHandler(UploadHandler[Backend]):
    """A client that goes away (Ctrl-C) stops the build: the running step is killed and cleaned up."""

    def _json_query(self, name: str, kind: type) -> Any:
        raw = self.query(name, "")
        if not raw:
            return kind()
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as e:
            raise InvalidParameter(f"invalid {name} JSON: {e}") from None
        if not isinstance(value, kind):
            raise InvalidParameter(f"invalid {name}: must be a JSON {kind.__name__}")
        return value

    def _options(self) -> BuildOptions:
        if self.q_str("remote"):
            raise Unsupported("building from a remote context (git or URL) is not supported by this pydock "
                              "daemon; send the context as a tar archive")
        if self.q_str("version") == "2":
            raise Unsupported("BuildKit is not supported by this pydock daemon; use the classic builder "
                              "(DOCKER_BUILDKIT=0)")
        build_args = self._json_query("buildargs", dict)
        labels = self._json_query("labels", dict)
        cache_from = self._json_query("cachefrom", list)
        if not all(v is None or isinstance(v, str) for v in build_args.values()):
            raise InvalidParameter("invalid buildargs: values must be strings")
        return BuildOptions(
            tags=[t for t in self.get_query_arguments("t") if t],
            dockerfile=self.q_str("dockerfile", "Dockerfile"),
            build_args=build_args, no_cache=self.q_bool("nocache"), pull=self.q_bool("pull"),
            target=self.q_str("target"), labels={str(k): str(v) for k, v in labels.items()},
            cache_from=[str(c) for c in cache_from], remove=self.q_bool("rm", True),
            force_remove=self.q_bool("forcerm"), quiet=self.q_bool("q"), platform=self.q_str("platform"),
            network=self.q_str("networkmode", "default"),
            extra_hosts=[h.decode(errors="replace") for h in self.request.query_arguments.get("extrahosts", [])])

    async def post(self, version: str | None = None) -> None:
        self.policy.check_build(self.q_str("networkmode", "default"))
        options = self._options()
        for tag in options.tags:
            await self.run(_check_tag, tag)
        build = await self.run(self.engine.builder.prepare, self.body_file(), options)
        cancel = self._stream_cancel = threading.Event()
        try:
            self.set_header("Content-Type", "application/json")
            try:
                async for msg in self.stream_thread(lambda c: self.engine.builder.run(build, c), cancel):
                    self.write(json.dumps(msg).encode() + b"\r\n")
                    await self.flush()
            except (BuildError, EngineError) as e:
                if not self._headers_written and not isinstance(e, BuildError):
                    raise
                self.write(error_message(e))
            self.finish()
        except tornado.iostream.StreamClosedError:
            pass
        finally:
            cancel.set()  # the stream's generator notices, stops and removes the build directory


def _check_tag(tag: str) -> None:
    ref = reference.parse(tag)
    if ref.digest:
        raise InvalidParameter(f"invalid reference format: {tag}: tags cannot contain a digest")


class BuildPruneHandler(ApiHandler[Backend]):
    async def post(self, version: str | None = None) -> None:
        self.q_filters()  # malformed filters are a 400 even though the cache is pruned whole
        pruned = await self.run(self.engine.builder.prune_cache)
        self.send_json({"CachesDeleted": pruned.deleted or None, "SpaceReclaimed": pruned.reclaimed})


ROUTES: list[Route] = [
    (route(r"/build"), BuildHandler),
    (route(r"/build/prune"), BuildPruneHandler),
]


def routes(backend: Backend) -> list[tuple[str, type[ApiHandler[Any]], Backend]]:
    return bind(ROUTES, backend)
