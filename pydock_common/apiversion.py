"""The Docker Engine API versions pydock speaks: the daemon's range and the version its CLI asks for."""
from __future__ import annotations

API_VERSION = "1.47"  # newest: what the daemon reports and the CLI requests
MIN_API_VERSION = "1.24"  # oldest a client may ask for, as dockerd 27's minimum


def version_tuple(version: str) -> tuple[int, ...]:
    """"1.41" as (1, 41), for comparisons; raises ValueError for anything else."""
    return tuple(int(p) for p in version.split("."))
