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
from typing import Any

from engine.api.base import NAME, ApiHandler, route
from engine.distribution.plan import Platform
from engine.distribution.registry import AuthConfig
from engine.errors import EngineError, InvalidParameter, Unsupported
from pydock_common import reference

Messages = Callable[[threading.Event], Iterator[dict[str, Any]]]


def registry_auth(handler: ApiHandler) -> AuthConfig:
    return AuthConfig.from_header(handler.request.headers.get("X-Registry-Auth", ""))


class ProgressStream(ApiHandler):
    """Streams progress messages; a client that goes away cancels the transfer."""

    async def stream_progress(self, messages: Messages) -> None:
        def chunks(cancel: threading.Event) -> Iterator[bytes]:
            for msg in messages(cancel):
                yield json.dumps(msg).encode() + b"\r\n"

        await self.send_stream(chunks, "application/json", in_band_error=progress_error)


def progress_error(e: Exception) -> bytes:
    message = e.message if isinstance(e, EngineError) else f"{type(e).__name__}: {e}"
    return json.dumps({"errorDetail": {"message": message}, "error": message}).encode() + b"\r\n"


async def pull(handler: ProgressStream) -> None:
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


class PushHandler(ProgressStream):
    async def post(self, version: str | None = None, ref: str = "") -> None:
        svc = self.engine.distribution
        plan = await self.run(svc.resolve_push, ref, self.q_str("tag"), registry_auth(self))
        await self.stream_progress(lambda cancel: svc.push(plan, cancel))


class AuthHandler(ApiHandler):
    async def post(self, version: str | None = None) -> None:
        body = self.json_body()
        if not isinstance(body, dict):
            raise InvalidParameter("invalid auth configuration: must be an object")
        self.send_json(await self.run(self.engine.distribution.login, AuthConfig.from_dict(body)))


class SearchHandler(ApiHandler):
    def get(self, version: str | None = None) -> None:
        raise Unsupported("searching registries is not supported by this pydock daemon; "
                          "registries implementing only the v2 distribution API have no search")


ROUTES = [
    (route(rf"/images/{NAME}/push"), PushHandler),
    (route(r"/images/search"), SearchHandler),
    (route(r"/auth"), AuthHandler),
]
