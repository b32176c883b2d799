"""Engine errors at the HTTP edge: the one table from error kind to status, and Docker's error body.

The engine raises kinds from engine/errors.py and never names a status code
(moby's errdefs with api/server/httpstatus). A class may carry more than one
kind (an unusable command is both an OCI runtime error and an invalid
parameter); the first kind in its method resolution order wins, so the more
specific kind goes first in the bases. Anything that is not an engine error
is a bug: 500, logged by tornado.
"""
from __future__ import annotations

import json

import tornado.web

from engine.errors import (
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

__all__ = ["error_body", "message_of", "status_of", "write_error"]

# Think twice before adding a kind here: one that exists usually fits.
_STATUS: dict[type[EngineError], int] = {
    NotModified: 304,
    InvalidParameter: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    InternalError: 500,
    Unsupported: 501,
    Unavailable: 503,
}


def status_of(exc: BaseException | None, default: int = 500) -> int:
    """The HTTP status for an error: its kind's (first in the MRO), a tornado HTTPError's own, else `default`."""
    if isinstance(exc, tornado.web.HTTPError):
        return exc.status_code
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return default


def message_of(exc: BaseException | None, reason: str) -> str:
    """The text Docker's clients show: an engine error's message, else `reason` or the exception itself."""
    if isinstance(exc, EngineError):
        return exc.message
    if isinstance(exc, tornado.web.HTTPError):
        return exc.log_message or reason
    return f"{type(exc).__name__}: {exc}" if exc else reason


def error_body(message: str) -> str:
    """Docker's error body, `{"message": ...}` and a newline."""
    return json.dumps({"message": message}) + "\n"


def write_error(handler: tornado.web.RequestHandler, status: int, message: str) -> None:
    """Answer with `status` and Docker's JSON body (none for 304, which has no body in HTTP)."""
    handler.set_status(status)
    handler.set_header("Content-Type", "application/json")
    if status == 304:
        handler.finish()
        return
    handler.finish(error_body(message))
