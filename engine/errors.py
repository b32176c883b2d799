"""Engine errors carry the HTTP status Docker would answer with.

Handlers never guess a status code: every failure the engine can foresee is
raised as one of these, so the API layer maps it to Docker's JSON error shape
(`{"message": ...}`) in one place.
"""
from __future__ import annotations


class EngineError(Exception):
    """Base class; `status` is the HTTP code the Docker API uses for it."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidParameter(EngineError):
    status = 400


class Unauthorized(EngineError):
    """Registry credentials missing or rejected (`docker login`, pull, push)."""

    status = 401


class Forbidden(EngineError):
    status = 403


class NotFound(EngineError):
    status = 404


class Conflict(EngineError):
    status = 409


class NotModified(EngineError):
    """Docker answers 304 when e.g. a running container is started again."""

    status = 304


class NotImplementedYet(EngineError):
    """For API features that pydock deliberately does not offer."""

    status = 501


def no_such_container(ref: str) -> NotFound:
    return NotFound(f"No such container: {ref}")


def no_such_image(ref: str) -> NotFound:
    return NotFound(f"No such image: {ref}")
