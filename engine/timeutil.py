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


def go_duration(ns: int) -> str:
    """Go's time.Duration.String ("30s", "1m30s", "500ms", "1h0m0s"), which dockerd's messages print."""
    if ns == 0:
        return "0s"
    sign, u = ("-" if ns < 0 else ""), abs(ns)
    if u < 1_000:
        return f"{sign}{u}ns"
    if u < 1_000_000:
        return f"{sign}{_fraction(u, 3)}µs"
    if u < 1_000_000_000:
        return f"{sign}{_fraction(u, 6)}ms"
    secs = u // 1_000_000_000
    text = f"{_fraction(secs % 60 * 1_000_000_000 + u % 1_000_000_000, 9)}s"
    hours, minutes = secs // 3600, secs // 60 % 60
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def _fraction(value: int, digits: int) -> str:
    """`value` / 10**digits in decimal, without trailing zeros (Go's fmtFrac and fmtInt)."""
    whole, frac = divmod(value, 10 ** digits)
    decimals = f"{frac:0{digits}d}".rstrip("0")
    return f"{whole}.{decimals}" if decimals else str(whole)
