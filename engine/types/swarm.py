"""Swarm requests, as far as dockerd's decoder checks them before it looks at the node's state.

A node outside any swarm refuses every swarm call (engine/cluster.py), but
a malformed body is still a 400 first. The specs carry only the fields
pydock reads or whose type a client is likely to get wrong; Go ignores the
rest, and so does `wire.decode`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from engine.wire import BOOL, STRING, STRING_MAP, STRINGS, Ptr, Scalar, wfield

UINT32 = Scalar("uint32", "int", 0, (1 << 32) - 1)


@dataclass
class Spec:
    GO_NAME: ClassVar[str] = "swarm.Spec"
    name: str = wfield("Name", STRING, omitempty=True)
    labels: dict[str, str] | None = wfield("Labels", STRING_MAP)


@dataclass
class InitRequest:
    """POST /swarm/init."""

    GO_NAME: ClassVar[str] = "swarm.InitRequest"
    listen_addr: str = wfield("ListenAddr", STRING)
    advertise_addr: str = wfield("AdvertiseAddr", STRING)
    data_path_addr: str = wfield("DataPathAddr", STRING)
    data_path_port: int = wfield("DataPathPort", UINT32)
    force_new_cluster: bool = wfield("ForceNewCluster", BOOL)
    spec: Spec = wfield("Spec", Spec)
    auto_lock_managers: bool = wfield("AutoLockManagers", BOOL)
    availability: str = wfield("Availability", STRING)
    default_addr_pool: list[str] | None = wfield("DefaultAddrPool", STRINGS)
    subnet_size: int = wfield("SubnetSize", UINT32)


@dataclass
class JoinRequest:
    """POST /swarm/join."""

    GO_NAME: ClassVar[str] = "swarm.JoinRequest"
    listen_addr: str = wfield("ListenAddr", STRING)
    advertise_addr: str = wfield("AdvertiseAddr", STRING)
    data_path_addr: str = wfield("DataPathAddr", STRING)
    remote_addrs: list[str] | None = wfield("RemoteAddrs", STRINGS)
    join_token: str = wfield("JoinToken", STRING)
    availability: str = wfield("Availability", STRING)


@dataclass
class UnlockRequest:
    """POST /swarm/unlock."""

    GO_NAME: ClassVar[str] = "swarm.UnlockRequest"
    unlock_key: str = wfield("UnlockKey", STRING)


@dataclass
class ServiceSpec:
    """POST /services/create and /services/{id}/update."""

    GO_NAME: ClassVar[str] = "swarm.ServiceSpec"
    name: str = wfield("Name", STRING, omitempty=True)
    labels: dict[str, str] | None = wfield("Labels", STRING_MAP)


@dataclass
class NodeSpec:
    """POST /nodes/{id}/update."""

    GO_NAME: ClassVar[str] = "swarm.NodeSpec"
    name: str = wfield("Name", STRING, omitempty=True)
    labels: dict[str, str] | None = wfield("Labels", STRING_MAP)
    role: str = wfield("Role", STRING, omitempty=True)
    availability: str = wfield("Availability", STRING, omitempty=True)


@dataclass
class Driver:
    GO_NAME: ClassVar[str] = "swarm.Driver"
    name: str = wfield("Name", STRING, omitempty=True)
    options: dict[str, str] | None = wfield("Options", STRING_MAP, omitempty=True)


@dataclass
class SecretSpec:
    """POST /secrets/create and /secrets/{id}/update."""

    GO_NAME: ClassVar[str] = "swarm.SecretSpec"
    name: str = wfield("Name", STRING, omitempty=True)
    labels: dict[str, str] | None = wfield("Labels", STRING_MAP)
    data: str = wfield("Data", STRING, omitempty=True)
    templating: Driver | None = wfield("Templating", Ptr(Driver), omitempty=True)


@dataclass
class ConfigSpec:
    """POST /configs/create and /configs/{id}/update."""

    GO_NAME: ClassVar[str] = "swarm.ConfigSpec"
    name: str = wfield("Name", STRING, omitempty=True)
    labels: dict[str, str] | None = wfield("Labels", STRING_MAP)
    data: str = wfield("Data", STRING, omitempty=True)
    templating: Driver | None = wfield("Templating", Ptr(Driver), omitempty=True)
