"""Volumes and their requests."""
from __future__ import annotations

from dataclasses import dataclass

from engine.wire import INT64, STRING, STRING_MAP, Ptr, wfield


@dataclass
class VolumeCreateRequest:
    """POST /volumes/create."""

    GO_NAME = "VolumeCreateBody"
    name: str = wfield("Name", STRING)
    driver: str = wfield("Driver", STRING)
    driver_opts: dict[str, str] | None = wfield("DriverOpts", STRING_MAP)
    labels: dict[str, str] | None = wfield("Labels", STRING_MAP)


@dataclass
class UsageData:
    size: int = wfield("Size", INT64)  # bytes; -1 when unknown
    ref_count: int = wfield("RefCount", INT64)


@dataclass
class Volume:
    """A volume as `docker volume inspect` shows it (UsageData only in `docker system df`)."""

    created_at: str = wfield("CreatedAt", STRING)
    driver: str = wfield("Driver", STRING)
    labels: dict[str, str] | None = wfield("Labels", STRING_MAP)
    mountpoint: str = wfield("Mountpoint", STRING)
    name: str = wfield("Name", STRING)
    options: dict[str, str] | None = wfield("Options", STRING_MAP)
    scope: str = wfield("Scope", STRING, default=lambda: "local")
    usage_data: UsageData | None = wfield("UsageData", Ptr(UsageData), omitempty=True)
