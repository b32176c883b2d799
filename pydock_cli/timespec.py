"""`--since`/`--until` values as docker's timetypes.GetTimestamp turns them into API timestamps.

Relative durations (`10m`, `1h30m`) count back from now; RFC 3339 dates and
times without a zone are local time; bare numbers are already Unix seconds.
"""
from __future__ import annotations

import datetime as _dt
import re
import time

from pydock_cli.session import CliError

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^([-+]?)((?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|ms|s|m|h))+)$")
_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIX = re.compile(r"^\d+(\.\d{1,9})?$")


def _duration(value: str) -> float | None:
    m = _DURATION.match(value)
    if not m:
        return None
    total = sum(float(n) * _UNITS[u] for n, u in _PART.findall(m.group(2)))
    return -total if m.group(1) == "-" else total


def _parse_time(value: str) -> _dt.datetime:
    text = value.replace("z", "Z")
    if "T" in text:
        date, _, clock = text.partition("T")
        zone = re.search(r"(Z|[+-]\d\d:\d\d)$", clock)
        bare = clock[:zone.start()] if zone else clock
        if bare.count(":") == 0:
            bare += ":00"
        text = f"{date}T{bare}{zone.group(1) if zone else ''}"
    parsed = _dt.datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.astimezone()


def api_time(value: str, name: str) -> str | None:
    if not value:
        return None
    d = _duration(value)
    if value != "0" and d is not None:
        return str(int(time.time() - d))
    if _UNIX.match(value):
        return value
    try:
        t = _parse_time(value)
    except ValueError:
        raise CliError(f'invalid value for "{name}": failed to parse value as time or duration: "{value}"') from None
    return f"{int(t.timestamp())}.{t.microsecond * 1000:09d}"
