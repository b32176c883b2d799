"""Registry routes: pull (via /images/create), push, login, search.

Pull and push answer with Docker's JSON progress stream. Everything that can
fail before the first layer moves (bad reference, unknown manifest, refused
credentials, image missing locally) fails as a plain HTTP error, as with
dockerd; later failures arrive in-band as an `errorDetail` message, which
the docker CLI prints before exiting 1.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar

from engine.api.base import NAME, ApiHandler, Route, bind, route
from engine.api.upload import Spooling
from engine.distribution.plan import Platform, PullPlan, PushPlan
from engine.distribution.registry import AuthConfig
from engine.errors import EngineError, InvalidParameter, Unsupported
from pydock_common import reference

Messages = Callable[[threading.Event], Iterator[dict[str, Any]]]
Message = dict[str, Any]


class Distribution(Protocol):
    """The distribution service as the pull, push and login routes use it."""

    def resolve_pull(self, name: str, auth: AuthConfig, platform: str = "") -> PullPlan: ...
    def pull_all_tags(self, name: str, auth: AuthConfig, platform: str,
                      cancel: threading.Event) -> Iterator[Message]: ...
    def pull(self, plan: PullPlan, cancel: threading.Event) -> Iterator[Message]: ...
    def resolve_push(self, name: str, tag: str, auth: AuthConfig) -> PushPlan: ...
    def push(self, plan: PushPlan, cancel: threading.Event) -> Iterator[Message]: ...
    def login(self, auth: AuthConfig) -> dict[str, str]: ...
    def inspect(self, name: str, auth: AuthConfig) -> dict[str, Any]: ...


class Backend(Spooling, Protocol):
    @property
    def distribution(self) -> Distribution: ...


P = TypeVar("P", bound=Backend)


def registry_auth(handler: ApiHandler[Any]) -> AuthConfig:
    return AuthConfig.from_header(handler.request.headers.get("X-Registry-Auth", ""))


class ProgressStream(ApiHandler[P]):
    """Streams progress messages; a client that goes away cancels the transfer."""

    async def stream_progress(self, messages: Messages) -> None:
        def chunks(cancel: threading.Event) -> Iterator[bytes]:
            for msg in messages(cancel):
                yield json.dumps(msg).encode() + b"\r\n"

        await self.send_stream(chunks, "application/json", in_band_error=progress_error)


def progress_error(e: Exception) -> bytes:
    message = e.message if isinstance(e, EngineError) else f"{type(e).__name__}: {e}"
    return json.dumps({"errorDetail": {"message": message}, "error": message}).encode() + b"\r\n"


async def pull(handler: ProgressStream[Any]) -> None:
    """`POST /images/create?fromImage=NAME&tag=TAG|DIGEST&platform=`."""
    name, tag = handler.q_str("fromImage"), handler.q_str("tag")
    svc = handler.engine.distribution
    auth, platform = registry_auth(handler), handler.q_str("platform")
    Platform.parse(platform)  # a bad platform is a 400, before the progress stream starts
    named = reference.parse(name, default_tag=False)
    if not tag and not named.tag and not named.digest:  # --all-tags
        await handler.stream_progress(lambda cancel: svc.pull_all_tags(name, auth, platform, cancel))
        return
    if tag:
        name += ("@" if tag.startswith("sha256:") else ":") + tag
    plan = await handler.run(svc.resolve_pull, name, auth, platform)
    await handler.stream_progress(lambda cancel: svc.pull(plan, cancel))


class PushHandler(ProgressStream[Backend]):
    async def post(self, version: str | None = None, ref: str = "") -> None:
        svc = self.engine.distribution
        plan = await self.run(svc.resolve_push, ref, self.q_str("tag"), registry_auth(self))
        await self.stream_progress(lambda cancel: svc.push(plan, cancel))


class AuthHandler(ApiHandler[Backend]):
    async def post(self, version: str | None = None) -> None:
        body = self.json_body()
        if not isinstance(body, dict):
            raise InvalidParameter("invalid auth configuration: must be an object")
        self.send_json(await self.run(self.engine.distribution.login, AuthConfig.from_dict(body)))


class DistributionInspectHandler(ApiHandler[Backend]):
    async def get(self, version: str | None = None, ref: str = "") -> None:
        try:
            auth = registry_auth(self)
        except InvalidParameter:
            auth = AuthConfig()  # dockerd looks up anonymously when the header does not decode
        self.send_json(await self.run(self.engine.distribution.inspect, ref, auth))


class SearchHandler(ApiHandler[Backend]):
    def get(self, version: str | None = None) -> None:
        raise Unsupported("searching registries is not supported by this pydock daemon; "
                          "registries implementing only the v2 distribution API have no search")


ROUTES: list[Route] = [
    (route(rf"/images/{NAME}/push"), PushHandler),
    (route(r"/images/search"), SearchHandler),
    (route(r"/auth"), AuthHandler),
    (route(rf"/distribution/{NAME}/json"), DistributionInspectHandler),
]


def routes(backend: Backend) -> list[tuple[str, type[ApiHandler[Any]], Backend]]:
    return bind(ROUTES, backend)
