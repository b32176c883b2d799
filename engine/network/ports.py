"""Published ports: parsing Docker's port specs, choosing host ports, and the record of what is published.

Publishing is its own collaborator because it is the one part of networking
that competes for a host-wide resource (host ports): choosing a port, checking
it is bindable and recording the rule happen under the firewall lock, so two
starts cannot take the same port. The rules live in the sandbox rows and the
firewall renders them (engine.network.firewall).
"""
from __future__ import annotations

import errno
import secrets
import socket
import threading
from collections.abc import Callable, Mapping
from typing import Any

from engine.errors import InternalError, InvalidParameter
from engine.network import ipam
from engine.network.peers import NetworkedContainer
from engine.network.store import NetworkStore
from engine.network.types import Published
from engine.network.userproxy import UserlandProxy, privileged_port_error
from engine.types.container import PortBinding

PROTOS = ("tcp", "udp")


class PortPublisher:
    def __init__(self, store: NetworkStore, fw_lock: threading.Lock, apply_firewall: Callable[[], None],
                 proxy: UserlandProxy | None = None) -> None:
        """`fw_lock` serialises choosing ports with rendering the firewall; `apply_firewall` renders it.

        `proxy` relays the ports in user space (rootless mode, where the
        firewall lives in another network namespace than the host's ports).
        """
        self.store = store
        self._fw = fw_lock
        self._apply_firewall = apply_firewall
        self._proxy = proxy

    def publish(self, c: NetworkedContainer, container_ip: str, bridge: str) -> None:
        """Record and apply the port rules of a container whose sandbox was just set up."""
        bindings = port_bindings(c.host_config.port_bindings)
        if c.host_config.publish_all_ports:
            for port in exposed(c.config.exposed_ports):
                bindings.setdefault(port, [PortBinding()])
        if not bindings:
            return
        with self._fw:
            taken = {(p["proto"], p["host_port"]) for p in self.store.port_rules()}
            rules = []
            for port, binds in bindings.items():
                cport, proto = split_port(port)
                for b in binds:
                    hip = b.host_ip
                    if ":" in hip:
                        continue  # IPv6 bindings: pydock publishes over IPv4 only
                    hport = _host_port(b.host_port, proto, taken, hip)
                    taken.add((proto, hport))
                    rules.append({"proto": proto, "host_ip": hip or "0.0.0.0", "host_port": hport,
                                  "container_ip": container_ip, "container_port": cport, "bridge": bridge})
            if self._proxy is not None:
                self._proxy.open(c.id, rules)
            self.store.set_ports(c.id, rules)
        self._apply_firewall()

    def release(self, cid: str) -> None:
        """The container's network is torn down: its user-space relay, if any, stops."""
        if self._proxy is not None:
            self._proxy.close(cid)

    def release_others(self, live: set[str]) -> None:
        """Stop the relays of every container but those in `live` (after a daemon restart)."""
        if self._proxy is not None:
            self._proxy.close_others(live)

    def published(self, cid: str) -> tuple[Published, ...]:
        """What a container publishes, in the order the rules were made."""
        return published_ports(self.store.sandbox(cid))


def published_ports(sandbox: dict[str, Any] | None) -> tuple[Published, ...]:
    """What the container of this sandbox (its stored data; None without one) publishes, in rule order."""
    return tuple(Published(p["container_port"], p["proto"], p["host_ip"], p["host_port"])
                 for p in (sandbox["ports"] if sandbox else []))


def split_port(spec: str) -> tuple[int, str]:
    """"80/tcp" -> (80, "tcp"); the protocol defaults to tcp."""
    port, _, proto = spec.partition("/")
    proto = proto or "tcp"
    if proto not in PROTOS:
        raise InvalidParameter(f"invalid proto: {proto}")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidParameter(f"invalid port: {spec}")
    return int(port), proto


def exposed(value: Mapping[str, object] | None) -> list[str]:
    """Config.ExposedPorts as normalised "port/proto" keys."""
    out = []
    for spec in value or {}:
        port, proto = split_port(spec)
        out.append(f"{port}/{proto}")
    return out


def port_bindings(value: Mapping[str, list[PortBinding] | None] | None) -> dict[str, list[PortBinding]]:
    """HostConfig.PortBindings, checked, by normalised "port/proto" (a null list means one any-port binding)."""
    out: dict[str, list[PortBinding]] = {}
    for spec, binds in (value or {}).items():
        port, proto = split_port(spec)
        binds = [PortBinding()] if binds is None else binds
        for b in binds:
            if b.host_ip and ":" not in b.host_ip:
                ipam.parse_address(b.host_ip, "host IP")
            if b.host_port and (not b.host_port.isdigit() or not 0 <= int(b.host_port) < 65536):
                raise InvalidParameter(f"invalid port specification: \"{b.host_port}\"")
        out[f"{port}/{proto}"] = binds
    return out


def _host_port(requested: str, proto: str, taken: set[tuple[str, int]], host_ip: str) -> int:
    """The requested host port if free, else a free one from the kernel's ephemeral range, as Docker."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    if requested and int(requested):
        port = int(requested)
        failure = errno.EADDRINUSE if (proto, port) in taken else _bind_error(host_ip, port, kind)
        if failure == errno.EACCES:  # a user's daemon (rootless) and a port below the unprivileged range
            raise privileged_port_error(port)
        if failure:
            raise InternalError(f"driver failed programming external connectivity: Bind for "
                              f"{host_ip or '0.0.0.0'}:{port} failed: port is already allocated")
        return port
    lo, hi = _ephemeral_range()
    for _ in range(200):
        port = lo + secrets.randbelow(hi - lo + 1)
        if (proto, port) not in taken and not _bind_error(host_ip, port, kind):
            return port
    raise InternalError("no free host port to publish")


def _ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        return 32768, 60999
    return lo, hi


def _bind_error(host_ip: str, port: int, kind: int) -> int:
    """Why the port cannot be bound on the host (an errno), 0 if it can."""
    with socket.socket(socket.AF_INET, kind) as s:
        if kind == socket.SOCK_STREAM:  # as the listener will: connections in TIME_WAIT do not hold the port
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host_ip or "0.0.0.0", port))
        except OSError as e:
            return e.errno or errno.EADDRINUSE
    return 0
