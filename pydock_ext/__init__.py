"""pydock inside Jupyter: server extension, IPython magics and widgets.

Imports stay lazy so that loading the IPython extension in a kernel does not
pull in the Jupyter server, and vice versa.
"""
from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .serverext import PydockExtension
    return [{"module": "pydock_ext.serverext", "app": PydockExtension}]


def load_ipython_extension(ipython: Any) -> None:
    from .magics import register
    register(ipython)
