"""Signals as Docker names them in requests and configs (`KILL`, `SIGKILL`, `9`)."""
from __future__ import annotations

import signal as _signal

from engine.errors import InvalidParameter


def parse_signal(sig: str | int | None, default: int = _signal.SIGKILL) -> int:
    """Docker accepts `KILL`, `SIGKILL` and `9`."""
    if sig in (None, ""):
        return default
    if isinstance(sig, int) or str(sig).isdigit():
        num = int(sig)
        if not 0 < num < 65:
            raise InvalidParameter(f"Invalid signal: {sig}")
        return num
    name = str(sig).upper()
    name = name if name.startswith("SIG") else "SIG" + name
    try:
        return int(getattr(_signal.Signals, name))
    except AttributeError:
        raise InvalidParameter(f"Invalid signal: {sig}") from None
