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
from typing import Protocol

from engine.types.container import ContainerConfig, HostConfig


class RunState(Protocol):
    @property
    def running(self) -> bool: ...
    @property
    def pid(self) -> int: ...


class NetworkedContainer(Protocol):
    """A container as networking reads it; met by engine.container.record.ContainerRecord."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def config(self) -> ContainerConfig: ...
    @property
    def host_config(self) -> HostConfig: ...
    @property
    def state(self) -> RunState: ...


class ContainerLookup(Protocol):
    """The container records networking reads; met by engine.container.service.ContainerService."""

    def resolve(self, ref: str) -> str:
        """A container's full ID for an ID, unique ID prefix or name; NotFound otherwise."""
        ...

    def get(self, ref: str) -> NetworkedContainer:
        """A container's record; NotFound otherwise."""
        ...


# The container service is built after the network service (it receives the
# network service in its constructor), so networking gets a callable that
# returns it, called only when an operation runs, never during construction.
ContainersRef = Callable[[], ContainerLookup]


def own_namespace(c: NetworkedContainer) -> bool:
    """Whether the container has a network namespace of its own that pydock wires (bridge networks)."""
    mode = c.host_config.network_mode
    return mode not in ("host", "none") and not mode.startswith("container:")
