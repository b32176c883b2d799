"""Legacy container links (`docker run --link name:alias` off user-defined networks), as dockerd keeps them.

A link is checked when its parent is created (the child must exist and not
share the host's network) and stored as (parent, alias, child ID), so renames
show at once and a removed child takes its links along. When the parent
starts on the default bridge, every child must be running there; the parent
then gets an /etc/hosts line per child ("IP<TAB>alias hostname name") and the
variables of dockerd's links package (ALIAS_PORT_80_TCP_ADDR, ALIAS_NAME,
ALIAS_ENV_...), and when a child starts again (with a new address) the hosts
files of its running parents are rewritten. On user-defined networks a link
is a DNS alias of the linking endpoint instead (Endpoint.link_aliases), which
the embedded resolver answers for that container only.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from engine.errors import Conflict, InvalidParameter, NotFound
from engine.network.peers import ContainerLookup, NetworkedContainer
from engine.network.store import NetworkStore
from engine.network.types import Network, parse_link


def plan(specs: list[str], containers: ContainerLookup) -> list[tuple[str, str]]:
    """HostConfig.Links of a container created off user-defined networks as (alias, child ID), with
    dockerd's registerLinks checks and messages."""
    out = []
    for spec in specs:
        name, alias = parse_link(spec)
        child = _get(containers, name, "could not get container for")
        while child.host_config.network_mode.startswith("container:"):
            child = _get(containers, child.host_config.network_mode.split(":", 1)[1], "Could not get container for")
        if child.host_config.network_mode == "host":
            raise InvalidParameter("conflicting options: host type networking can't be used with links. "
                                   "This would result in undefined behavior")
        out.append((alias, child.id))
    return out


def _get(containers: ContainerLookup, ref: str, what: str) -> NetworkedContainer:
    try:
        return containers.get(ref)
    except NotFound as e:  # a missing child is a bad request, not a missing image (moby/moby#39823)
        raise InvalidParameter(f"{what} {ref}: {e.message}") from None


@dataclass(frozen=True)
class Child:
    """A linked container as its parent sees it: the full link name ("/parent/alias") and the child."""

    link_name: str
    container: NetworkedContainer
    ip: str
    ip6: str

    @property
    def alias(self) -> str:
        return self.link_name.rsplit("/", 1)[-1]

    def hosts_line_names(self) -> str:
        """The alias, the child's hostname, and its name when that differs from the alias."""
        name = self.container.name.lstrip("/")
        names = f"{self.alias} {self.container.config.hostname}"
        return names if self.alias == name else f"{names} {name}"

    def env(self) -> list[str]:
        return link_env(self.link_name, self.ip, self.container.config.env or [],
                        list(self.container.config.exposed_ports or {}))


class LegacyLinks:
    """The links of containers on the default bridge, read from the store and the container records."""

    def __init__(self, store: NetworkStore, containers: Callable[[], ContainerLookup],
                 bridge: Callable[[], Network]) -> None:
        self.store = store
        self._containers = containers
        self._bridge = bridge

    def children(self, c: NetworkedContainer, check: bool = False) -> list[Child]:
        """`c`'s links when it is on the default bridge; with `check`, dockerd's refusals of a start whose
        child does not run there."""
        linked = self.store.children(c.id)
        if not linked:
            return []
        bridge = self._bridge()
        if self.store.endpoint(bridge.id, c.id) is None:
            return []
        out = []
        for alias, child_id in linked:
            try:
                child = self._containers().get(child_id)
            except NotFound:
                continue  # removed meanwhile: its links go with it
            link_name = f"/{c.name.lstrip('/')}/{alias}"
            ep = self.store.endpoint(bridge.id, child.id)
            if check and ep is None:
                raise Conflict(f"Cannot link to {child.name}, as it does not belong to the default network")
            if check and not child.state.running:
                raise Conflict(f"Cannot link to a non running container: {child.name} AS {link_name}")
            if ep is not None and ep.ip:
                out.append(Child(link_name, child, ep.ip, ep.ip6))
        return out

    def inspect(self, c: NetworkedContainer) -> list[str] | None:
        """HostConfig.Links as dockerd shows them: "/child:/parent/alias", by the names of now."""
        out = []
        for alias, child_id in self.store.children(c.id):
            try:
                child = self._containers().get(child_id)
            except NotFound:
                continue
            out.append(f"/{child.name.lstrip('/')}:/{c.name.lstrip('/')}/{alias}")
        return out or None

    def remove(self, name: str) -> NetworkedContainer:
        """`docker rm --link /parent/alias`: the parent forgets the link, the child stays (dockerd's rmLink).

        Returns the parent, whose /etc/hosts no longer names the child once rewritten.
        """
        link_name = name if name.startswith("/") else "/" + name
        parent_name, _, alias = link_name.rpartition("/")
        if not parent_name:
            self._containers().get(name)  # a missing container is a 404 before anything else, as in dockerd
            raise Conflict("Conflict, cannot remove the default link name of the container")
        try:
            parent = self._containers().get(parent_name)
        except NotFound:
            raise NotFound(f"No such container: {name}") from None
        if alias not in dict(self.store.children(parent.id)):
            raise NotFound(f"No such container: {name}")
        self.store.delete_link(parent.id, alias)
        return parent

    def running_parents(self, cid: str) -> list[NetworkedContainer]:
        """The running containers that link to `cid` (their /etc/hosts names it)."""
        out = []
        for parent_id, _alias in self.store.parents(cid):
            try:
                parent = self._containers().get(parent_id)
            except NotFound:
                continue
            if parent.state.running:
                out.append(parent)
        return out


def rewrite_hosts(path: str, text: str) -> None:
    """Replace a running container's /etc/hosts in place: the container sees the file by its inode."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _port_key(port: str) -> tuple[int, str]:
    number, _, proto = port.partition("/")
    return int(number), (proto or "tcp").lower()


def link_env(link_name: str, ip: str, child_env: list[str], exposed_ports: list[str]) -> list[str]:
    """dockerd's links.Link.ToEnv: the variables a parent gets for one child."""
    alias = link_name.rsplit("/", 1)[-1].upper().replace("-", "_")
    # numbers ascending, tcp first among equal numbers
    ports = sorted((_port_key(p) for p in exposed_ports), key=lambda p: (p[0], p[1] != "tcp", p[1]))
    env = []
    if ports:
        number, proto = ports[0]
        env.append(f"{alias}_PORT={proto}://{ip}:{number}")
    i = 0
    while i < len(ports):
        number, proto = ports[i]
        j = _next_contiguous(ports, i)
        if j > i + 1:  # a run of three or more: its start and end as well
            end_number, end_proto = ports[j]
            key = f"{alias}_PORT_{number}_{proto.upper()}"
            env += [f"{key}_START={proto}://{ip}:{number}", f"{key}_ADDR={ip}", f"{key}_PROTO={proto}",
                    f"{key}_PORT_START={number}",
                    f"{alias}_PORT_{number}_{end_proto.upper()}_END={end_proto}://{ip}:{end_number}",
                    f"{alias}_PORT_{number}_{end_proto.upper()}_PORT_END={end_number}"]
            i = j + 1
        else:
            i += 1
    for number, proto in ports:
        key = f"{alias}_PORT_{number}_{proto.upper()}"
        env += [f"{key}={proto}://{ip}:{number}", f"{key}_ADDR={ip}", f"{key}_PORT={number}",
                f"{key}_PROTO={proto}"]
    env.append(f"{alias}_NAME={link_name}")
    for item in child_env:
        key, sep, value = item.partition("=")
        if sep and key not in ("HOME", "PATH"):
            env.append(f"{alias}_ENV_{key}={value}")
    return env


def _next_contiguous(ports: list[tuple[int, str]], index: int) -> int:
    """The last index of the run of consecutive numbers starting at `index` (dockerd's nextContiguous)."""
    value = ports[index][0]
    for i in range(index + 1, len(ports)):
        if ports[i][0] > value + 1:
            return i - 1
        value += 1
    return len(ports) - 1
