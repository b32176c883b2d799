"""Exit 0 if the installed pydock is an editable install of this checkout with its current entry points.

setup.sh reinstalls otherwise: after a checkout moves, or when pyproject.toml
changes the console scripts (e.g. `pydock` moving to its own package), a
stale install would run the old code.
"""
from __future__ import annotations

import json
import os
import sys
from importlib import metadata

import tomllib


def main() -> int:
    try:
        dist = metadata.distribution("pydock")
    except metadata.PackageNotFoundError:
        return 1
    url = json.loads(dist.read_text("direct_url.json") or "{}").get("url", "")
    if url != "file://" + os.getcwd():
        return 1
    with open("pyproject.toml", "rb") as f:
        wanted = tomllib.load(f)["project"]["scripts"]
    installed = {ep.name: ep.value for ep in dist.entry_points if ep.group == "console_scripts"}
    return 0 if installed == wanted else 1


if __name__ == "__main__":
    sys.exit(main())
