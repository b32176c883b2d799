"""A container's record: what the engine stores and works on, typed.

Its fields are those of Docker's inspect document that are stored (the live
ones, NetworkSettings, Mounts and ExecIDs, are added at the API edge from the
network, volume and exec services), plus private ones Docker does not show:
the mount points with what starting needs, the image's layer chain, whether
a client stopped it, and whether it is a build's RUN container. The stored
form is this record through engine/wire.py, under Docker's field names and
`_`-prefixed private ones, so data roots of earlier versions load unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NewType

from engine.container.state import State
from engine.types.container import ContainerConfig, HostConfig
from engine.volume.mountspec import MountPoint
from engine.wire import BOOL, INT, STRING, STRINGS, List, wfield

# a container's full ID (64 hex digits), as ContainerStore.resolve returns it; never a name or prefix
ContainerID = NewType("ContainerID", str)


@dataclass(slots=True)
class GraphDriverData:
    lower_dir: str = wfield("LowerDir", STRING)
    upper_dir: str = wfield("UpperDir", STRING)
    work_dir: str = wfield("WorkDir", STRING)
    merged_dir: str = wfield("MergedDir", STRING)


@dataclass(slots=True)
class GraphDriver:
    name: str = wfield("Name", STRING, default=lambda: "overlay2")
    data: GraphDriverData = wfield("Data", GraphDriverData)


@dataclass(slots=True)
class ContainerRecord:
    GO_NAME = "ContainerJSON"
    id: ContainerID = wfield("Id", STRING)
    created: str = wfield("Created", STRING)  # RFC 3339, nanoseconds
    path: str = wfield("Path", STRING)
    args: list[str] = wfield("Args", STRINGS, default=list)
    state: State = wfield("State", State)
    image_id: str = wfield("Image", STRING)
    resolv_conf_path: str = wfield("ResolvConfPath", STRING)
    hostname_path: str = wfield("HostnamePath", STRING)
    hosts_path: str = wfield("HostsPath", STRING)
    log_path: str = wfield("LogPath", STRING)
    name: str = wfield("Name", STRING)  # with Docker's leading "/"
    restart_count: int = wfield("RestartCount", INT)
    driver: str = wfield("Driver", STRING, default=lambda: "overlay2")
    platform: str = wfield("Platform", STRING, default=lambda: "linux")
    mount_label: str = wfield("MountLabel", STRING)
    process_label: str = wfield("ProcessLabel", STRING)
    app_armor_profile: str = wfield("AppArmorProfile", STRING)
    host_config: HostConfig = wfield("HostConfig", HostConfig)
    graph_driver: GraphDriver = wfield("GraphDriver", GraphDriver)
    config: ContainerConfig = wfield("Config", ContainerConfig)
    # private: stored, never shown
    mount_points: list[MountPoint] = wfield("_mounts", List(MountPoint), default=list)
    chain: str = wfield("_chain", STRING)  # the image's top layer chain, the lower layers of the root fs
    manual_stop: bool = wfield("_manual_stop", BOOL)  # stopped or killed by a client: no restart policy applies
    intermediate: bool = wfield("_intermediate", BOOL)  # a build's RUN container: removed if a daemon restart finds it

    @property
    def short_name(self) -> str:
        """The name as users write it (no leading "/")."""
        return self.name.lstrip("/")

    @property
    def argv(self) -> list[str]:
        return [self.path, *self.args]

    @property
    def disposable(self) -> bool:
        """An --rm or build container: the daemon's recovery removes it whatever its last saved state (a
        created, running or exited record, or none), so a power loss that undid a write of its creation,
        start, exit or removal would change nothing, and those writes need not wait for the disk
        (MetaStore.transaction)."""
        return self.host_config.auto_remove or self.intermediate

    @property
    def labels(self) -> dict[str, str]:
        return self.config.labels or {}
