"""The engine's errors: Docker's error kinds, and the messages the engine words the same way everywhere.

The kinds themselves live in `pydock_common.errdefs`, shared with the
client; engine code imports them from here. No HTTP here: engine/api/errors.py
maps kinds to status codes.
"""
from __future__ import annotations

from pydock_common.errdefs import (
    Conflict,
    EngineError,
    Forbidden,
    InternalError,
    InvalidParameter,
    NotFound,
    NotModified,
    Unauthorized,
    Unavailable,
    Unsupported,
)

__all__ = ["Conflict", "EngineError", "Forbidden", "InternalError", "InvalidParameter", "NotFound", "NotModified",
           "Unauthorized", "Unavailable", "Unsupported", "no_such_container", "no_such_image"]


def no_such_container(ref: str) -> NotFound:
    return NotFound(f"No such container: {ref}")


def no_such_image(ref: str) -> NotFound:
    return NotFound(f"No such image: {ref}")
