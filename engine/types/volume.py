"""Volume requests."""
from __future__ import annotations

from dataclasses import dataclass

from engine.wire import STRING, STRING_MAP, wfield


@dataclass
class VolumeCreateRequest:
    """POST /volumes/create."""

    GO_NAME = "VolumeCreateBody"
    name: str = wfield("Name", STRING)
    driver: str = wfield("Driver", STRING)
    driver_opts: dict[str, str] | None = wfield("DriverOpts", STRING_MAP)
    labels: dict[str, str] | None = wfield("Labels", STRING_MAP)
