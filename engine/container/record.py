"""Typed views of a container record: Container, Config, HostConfig, RestartPolicy; ContainerID.

The stored record is Docker's inspect document plus private `_` keys (see
store.py), because `docker inspect` must show every field as the client gave
it, including the many pydock passes through without interpreting (Dns,
Ulimits, Sysctls, ...). These dataclasses hold only the fields the engine
itself reads, in snake_case, built from that document by `from_docker` (the
one place that knows its field names and the defaults of records written by
older versions). They are snapshots: the document stays the stored form and
what the network and volume services receive, and state changes go through
state.State.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NewType

from engine.container.state import State

# a container's full ID (64 hex digits), as ContainerStore.resolve returns it; never a name or prefix
ContainerID = NewType("ContainerID", str)
Json = Mapping[str, Any]


@dataclass(frozen=True)
class RestartPolicy:
    name: str = "no"  # no, always, unless-stopped, on-failure
    maximum_retry_count: int = 0  # on-failure only; 0 means no limit

    @classmethod
    def from_docker(cls, doc: Json | None) -> RestartPolicy:
        doc = doc or {}
        return cls(name=doc.get("Name") or "no", maximum_retry_count=int(doc.get("MaximumRetryCount") or 0))

    def should_restart(self, exit_code: int, restart_count: int) -> bool:
        """After an exit the daemon did not ask for: whether the policy starts the container again."""
        if self.name in ("always", "unless-stopped"):
            return True
        if self.name == "on-failure":
            limit = self.maximum_retry_count
            return exit_code != 0 and (limit == 0 or restart_count < limit)
        return False


@dataclass(frozen=True)
class HostConfig:
    """The HostConfig fields the engine reads (create has filled in dockerd's defaults)."""

    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)
    auto_remove: bool = False
    network_mode: str = "default"

    @classmethod
    def from_docker(cls, doc: Json) -> HostConfig:
        return cls(restart_policy=RestartPolicy.from_docker(doc.get("RestartPolicy")),
                   auto_remove=bool(doc.get("AutoRemove")), network_mode=doc.get("NetworkMode") or "default")


@dataclass(frozen=True)
class Config:
    """The Config fields the engine reads: stdio, stop behaviour, labels and the image name."""

    image: str = ""  # as the client named it (the record's `image_id` is what it resolved to)
    tty: bool = False
    open_stdin: bool = False
    stdin_once: bool = False
    stop_signal: str = ""  # empty: SIGTERM
    stop_timeout: int | None = None  # None: the daemon's default
    labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_docker(cls, doc: Json) -> Config:
        timeout = doc.get("StopTimeout")
        return cls(image=doc.get("Image") or "", tty=bool(doc.get("Tty")), open_stdin=bool(doc.get("OpenStdin")),
                   stdin_once=bool(doc.get("StdinOnce")), stop_signal=doc.get("StopSignal") or "",
                   stop_timeout=None if timeout is None else int(timeout), labels=dict(doc.get("Labels") or {}))


@dataclass(frozen=True)
class Container:
    """A container as the engine reads it; `from_docker` takes a stored record."""

    id: ContainerID
    name: str  # with Docker's leading "/"
    created: str  # RFC 3339, nanoseconds
    image_id: str
    argv: list[str]  # Path followed by Args
    state: State
    config: Config
    host_config: HostConfig
    restart_count: int = 0
    manual_stop: bool = False  # stopped or killed by a client: no restart policy applies
    intermediate: bool = False  # a build's RUN container: removed if a daemon restart finds it

    @classmethod
    def from_docker(cls, record: Json) -> Container:
        return cls(id=ContainerID(record["Id"]), name=record["Name"], created=record["Created"],
                   image_id=record["Image"], argv=[record["Path"], *record["Args"]],
                   state=State.from_docker(record["State"]), config=Config.from_docker(record["Config"]),
                   host_config=HostConfig.from_docker(record["HostConfig"]),
                   restart_count=int(record.get("RestartCount") or 0),
                   manual_stop=bool(record.get("_manual_stop")), intermediate=bool(record.get("_intermediate")))

    @property
    def short_name(self) -> str:
        """The name as users write it (no leading "/")."""
        return self.name.lstrip("/")
