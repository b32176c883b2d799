"""Error kinds shared by the daemon and the client: what went wrong, in Docker's categories.

Like moby's errdefs, the kinds are one small list both sides use: the engine
raises them, the API maps them to a status, and the client raises the same
kinds for problems it finds before sending anything (a bad image reference,
an unsafe archive). Add a kind only when callers must tell it apart.
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
