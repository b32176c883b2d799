"""Docker's timestamp formats (RFC 3339 with nanoseconds) and parsing of --since/--until."""
from __future__ import annotations

import datetime as _dt
import re
import time

from engine.errors import InvalidParameter

ZERO_TIME = "0001-01-01T00:00:00Z"


def rfc3339_ns(ns: int | None = None) -> str:
    if ns is None:
        ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    base = _dt.datetime.fromtimestamp(secs, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:09d}Z"


def parse_rfc3339_ns(text: str) -> int:
    """Inverse of rfc3339_ns, tolerant of fewer fractional digits and offsets."""
    if not text or text.startswith("0001-01-01"):
        return 0
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", text)
    if not m:
        raise InvalidParameter(f"invalid timestamp {text[:64]!r}")
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    secs = int(_dt.datetime.fromisoformat(m.group(1) + tz).timestamp())
    frac = (m.group(2) or "0")[:9].ljust(9, "0")
    return secs * 1_000_000_000 + int(frac)


def parse_api_time(value: str) -> int:
    """`since`/`until` query values as the CLI sends them: seconds[.nanos] since the epoch."""
    value = value.strip()
    if not value:
        return 0
    m = re.match(r"^(\d+)(?:\.(\d{1,9}))?$", value)
    if m:
        return int(m.group(1)) * 1_000_000_000 + int((m.group(2) or "0").ljust(9, "0"))
    return parse_rfc3339_ns(value)
