"""Registry failures: what a pull, push or login reports when the registry refuses, fails or cannot be reached."""
from __future__ import annotations

from engine.errors import EngineError


class RegistryError(EngineError):
    """A registry answered with an error, or could not be reached."""


class AuthFailed(RegistryError):
    """Credentials missing or refused. dockerd answers a pull or push with 500 for this (the
    docker CLI would otherwise prompt for a login); only `login` turns it into a 401."""


class RegistryUnreachable(RegistryError):
    """The connection failed or dropped: worth a retry, unlike an answer."""
