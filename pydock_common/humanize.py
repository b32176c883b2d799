"""Docker's human-readable sizes and durations (go-units), written once for the daemon and the CLI.

Sizes appear in progress lines (pull, push, load), `docker images`/`system df`
and log options; durations in `docker ps` STATUS.
"""
from __future__ import annotations

import re

from pydock_common.errdefs import InvalidParameter

_SIZE_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_DECIMAL = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}


def human_size(size: float, precision: int = 4) -> str:
    """go-units HumanSizeWithPrecision: decimal units, `precision` significant digits (HumanSize is 4)."""
    i = 0
    while size >= 1000 and i < len(_SIZE_UNITS) - 1:
        size /= 1000.0
        i += 1
    return f"{size:.{precision}g}{_SIZE_UNITS[i]}"


def from_human_size(text: str) -> int:
    """go-units FromHumanSize: decimal multiples ("10m" is 10,000,000 bytes)."""
    m = _SIZE_RE.match(text)
    if not m:
        raise InvalidParameter(f"invalid size: '{text}'")
    try:
        size = float(m.group(1))
    except ValueError:
        raise InvalidParameter(f'strconv.ParseFloat: parsing "{m.group(1)}": invalid syntax') from None
    return int(size * _DECIMAL.get((m.group(2) or "").lower(), 1))


def human_duration(seconds: float) -> str:
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"
