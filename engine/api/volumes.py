"""Volume routes: `docker volume create/ls/inspect/rm/prune`."""
from __future__ import annotations

from typing import Any

from ..errors import InvalidParameter
from .base import ID, ApiHandler, _version_tuple, route


def _str_map(value: Any, key: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidParameter(f"invalid {key}: must be a map of strings")
    return value


class VolumeHandler(ApiHandler):
    async def get(self, version: str | None = None, ref: str = "") -> None:
        self.send_json(await self.run(self.engine.volumes.inspect, ref))

    async def delete(self, version: str | None = None, ref: str = "") -> None:
        await self.run(self.engine.volumes.remove, ref, self.q_bool("force"))
        self.set_status(204)
        self.finish()


class VolumeCreateHandler(VolumeHandler):
    """POST creates; GET and DELETE reach a volume that happens to be named "create"."""

    async def post(self, version: str | None = None, ref: str = "") -> None:
        body = self.json_body(required=False) or {}
        if not isinstance(body, dict):
            raise InvalidParameter("invalid volume create request")
        self.policy.check_volume_create(body)
        name, driver = body.get("Name") or "", body.get("Driver") or ""
        if not isinstance(name, str) or not isinstance(driver, str):
            raise InvalidParameter("invalid volume create request: Name and Driver must be strings")
        vol = await self.run(self.engine.volumes.create, name, driver, _str_map(body.get("DriverOpts"), "DriverOpts"),
                             _str_map(body.get("Labels"), "Labels"))
        self.send_json(vol, 201)


class VolumePruneHandler(VolumeHandler):
    async def post(self, version: str | None = None, ref: str = "") -> None:
        # before API 1.42, prune took every unused volume, not only anonymous ones
        before_1_42 = bool(version) and _version_tuple(version or "") < (1, 42)
        self.send_json(await self.in_thread(self.engine.volumes.prune, self.q_filters(), before_1_42))


class VolumeListHandler(ApiHandler):
    async def get(self, version: str | None = None) -> None:
        self.send_json(await self.run(self.engine.volumes.list, self.q_filters()))


ROUTES: list[tuple[str, Any]] = [
    (route(r"/volumes"), VolumeListHandler),
    (route(r"/volumes/(?P<ref>create)"), VolumeCreateHandler),
    (route(r"/volumes/(?P<ref>prune)"), VolumePruneHandler),
    (route(rf"/volumes/{ID}"), VolumeHandler),
]
