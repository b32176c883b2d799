"""The engine's errors: Docker's error kinds, and the messages the engine words the same way everywhere.

The kinds themselves live in `pydock_common.errdefs`, shared with the
client; engine code imports them from here.
"""
from __future__ import annotations

from pydock_common.errdefs import (
    Conflict,
    EngineError,
    Forbidden,
    InvalidParameter,
    NotFound,
    NotImplementedYet,
    NotModified,
    Unauthorized,
)

__all__ = ["Conflict", "EngineError", "Forbidden", "InvalidParameter", "NotFound", "NotImplementedYet",
           "NotModified", "Unauthorized", "no_such_container", "no_such_image"]


def no_such_container(ref: str) -> NotFound:
    return NotFound(f"No such container: {ref}")


def no_such_image(ref: str) -> NotFound:
    return NotFound(f"No such image: {ref}")
