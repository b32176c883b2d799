"""Docker's JSON progress messages for pull and push ("Downloading [==>  ] 1.2MB/3MB"), rate-limited as dockerd's."""
from __future__ import annotations

import time
from typing import Any

from pydock_common.humanize import human_size

PROGRESS_INTERVAL = 0.1
Message = dict[str, Any]


def progress_bar(current: int, total: int) -> str:
    """The `progress` string dockerd renders (terminal width > 110, no time estimate)."""
    if total <= 0:
        return f"{human_size(current):>8}"
    pct = min(int(current / total * 100) // 2, 50)
    bar = "[" + "=" * pct + ">" + " " * (50 - pct) + "] "
    if current > total:
        return bar + f"{human_size(current):>8}"
    return bar + f"{human_size(current):>8}/{human_size(total)}"


def status(text: str, id_: str = "") -> Message:
    return {"status": text, "id": id_} if id_ else {"status": text}


def update(id_: str, text: str) -> Message:
    return {"status": text, "progressDetail": {}, "id": id_}


def progress(id_: str, text: str, current: int, total: int) -> Message:
    return {"status": text, "progressDetail": {"current": current, "total": total},
            "progress": progress_bar(current, total), "id": id_}


class Throttle:
    """Rate-limits progress updates as dockerd's progress reader does."""

    def __init__(self) -> None:
        self.last = 0.0

    def due(self) -> bool:
        now = time.monotonic()
        if now - self.last >= PROGRESS_INTERVAL:
            self.last = now
            return True
        return False
