"""fvbommel/sortorder.NaturalLess, the order docker lists volumes, networks and port mappings in."""
from __future__ import annotations

import re
from typing import Any

_CHUNKS = re.compile(r"(\d+)")


def natural_key(text: str) -> list[tuple[int, int, str]]:
    """Digit runs compare as numbers and sort before other characters; a shorter prefix sorts first."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in _CHUNKS.split(text) if part]


def by_name(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda item: natural_key(item.get("Name", "")))
