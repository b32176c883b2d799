"""Error kinds shared by the daemon and the client: what went wrong, in Docker's categories.

Like moby's errdefs, the kinds are one small list both sides use: the engine
raises them, the API layer (engine/api/errors.py) maps each kind to an HTTP
status, and the client raises the same kinds for problems it finds before
sending anything (a bad image reference, an unsafe archive). The kinds know
nothing about HTTP, so domain code never decides by status code.
Add a kind only when callers must tell it apart; prefer an existing one.
"""
from __future__ import annotations

__all__ = ["Conflict", "EngineError", "Forbidden", "InternalError", "InvalidParameter", "NotFound",
           "NotModified", "Unauthorized", "Unavailable", "Unsupported"]


class EngineError(Exception):
    """Base of every kind; `message` is the text Docker's clients show. Untagged, it is an internal error."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidParameter(EngineError):
    """The request itself is wrong (bad value, malformed body, unusable command)."""


class Unauthorized(EngineError):
    """Registry credentials missing or rejected (`docker login`, pull, push)."""


class Forbidden(EngineError):
    """Allowed in general, refused here (host policy, protected object)."""


class NotFound(EngineError):
    """The named object (container, image, network, volume, exec) does not exist."""


class Conflict(EngineError):
    """The object's current state or a name already taken forbids the operation."""


class NotModified(EngineError):
    """Nothing to do: the object is already as asked (e.g. starting a running container)."""


class Unavailable(EngineError):
    """The engine cannot serve this right now (shutting down, swarm not active)."""


class Unsupported(EngineError):
    """An API feature that pydock deliberately does not offer."""


class InternalError(EngineError):
    """The engine or something under it (runc, the kernel, the store) failed."""
