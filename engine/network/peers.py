"""What networking needs from the container service, as a Protocol declared here.

Networking and containers need each other: a container's start builds its
network, and networking asks about containers (their current names for DNS,
whether one still runs, whose namespace a `container:<id>` joins). Declaring
the small slice networking calls here keeps the import one way
(engine.container -> engine.network): this package never imports
engine.container, and the composition root passes the container service in.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class ContainerLookup(Protocol):
    """The container records networking reads; met by engine.container.service.ContainerService."""

    def resolve(self, ref: str) -> str:
        """A container's full ID for an ID, unique ID prefix or name; NotFound otherwise."""
        ...

    def get(self, ref: str) -> dict[str, Any]:
        """A container's record (Docker's inspect document: Id, Name, State, HostConfig); NotFound otherwise."""
        ...


# The container service is built after the network service (it receives the
# network service in its constructor), so networking gets a callable that
# returns it, called only when an operation runs, never during construction.
ContainersRef = Callable[[], ContainerLookup]


def own_namespace(c: dict[str, Any]) -> bool:
    """Whether the container has a network namespace of its own that pydock wires (bridge networks)."""
    mode = c["HostConfig"]["NetworkMode"]
    return mode not in ("host", "none") and not mode.startswith("container:")
