"""What the image service hands out for the API edge to show (engine/api/image_json.py builds Docker's JSON)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.image.store import ImageRecord


@dataclass(frozen=True)
class ImageSummary:
    """An image as `docker images` lists it: the references shown are those a `reference` filter kept."""

    record: ImageRecord
    tags: list[str]
    digests: list[str]
    labels: dict[str, str]


@dataclass(frozen=True)
class ImageDetails:
    """An image as `docker image inspect` shows it; `config` is its OCI image config, `lower_dirs` its layers'
    directories top first."""

    record: ImageRecord
    config: dict[str, Any]
    tags: list[str]
    digests: list[str]
    lower_dirs: list[str]
    driver: str  # the storage driver stacking the layers (overlay2 or fuse-overlayfs)


@dataclass(frozen=True)
class HistoryEntry:
    """One build step of `docker history`; only the newest names the image and its tags."""

    created: int  # unix seconds
    created_by: str
    size: int
    comment: str
    image_id: str = ""
    tags: list[str] = field(default_factory=list)
