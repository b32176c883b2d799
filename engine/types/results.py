"""What removal verbs report back, for the API edge to show in Docker's shapes."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Pruned:
    """A prune's outcome: the IDs or names removed and the bytes freed."""

    deleted: Sequence[str]
    reclaimed: int = 0


@dataclass(frozen=True)
class ImageDeletion:
    """One step of `docker rmi`: a reference untagged, or an image deleted (exactly one is set)."""

    untagged: str = ""
    deleted: str = ""
