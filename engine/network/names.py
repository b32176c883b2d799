"""Which names the embedded DNS answers, and to whom: Docker's rules for user-defined networks.

A container on a user-defined network answers to its name (as of now, so a
rename shows at once), its aliases on that network, its short ID and its
hostname (its DNSNames). A querier resolves the names of the networks it is
on; as in libnetwork's resolver, a link alias of the querier's own endpoint
names its target on that endpoint's network and hides any container of the
same name there. Only our containers get answers, so the resolver on a
gateway address is no open relay for whoever can route to it.
"""
from __future__ import annotations

from collections.abc import Callable

from engine.errors import EngineError
from engine.network.peers import ContainerLookup
from engine.network.store import NetworkStore
from engine.network.types import Endpoint, Network


class Names:
    def __init__(self, store: NetworkStore, containers: Callable[[], ContainerLookup],
                 resolve: Callable[[str], Network]) -> None:
        self.store = store
        self._containers = containers
        self._resolve = resolve

    def lookup(self, src: str, network_id: str, name: str) -> tuple[list[str] | None, list[str]] | None:
        """engine.network.dns.Lookup: the addresses `name` has for the container at `src` on the network
        (None: not a name of ours), and the resolvers to relay other names to (its --dns, or the host's);
        None when `src` is none of our containers."""
        me = self.store.address_owner(network_id, src)
        if me is None:
            return None
        mine = [ep for ep in self.store.endpoints(container_id=me)
                if not self._resolve(ep.network_id).predefined]  # "bridge" has no names
        upstream: list[str] = []
        try:
            upstream = self._containers().get(me).host_config.dns or []
        except EngineError:
            pass
        for ep in mine:
            target = {alias.lower(): target for alias, target in ep.link_aliases().items()}.get(name)
            found = self._addresses_on(ep.network_id, target.lower()) if target else []
            if found:
                return found, upstream
        found = []
        for ep in mine:
            if name not in {alias.lower() for alias in ep.link_aliases()}:
                found += self._addresses_on(ep.network_id, name)
        return (found or None), upstream

    def _addresses_on(self, network_id: str, name: str) -> list[str]:
        """The addresses (IPv4, then IPv6) of the running endpoints of a network that answer to `name`."""
        v4, v6 = [], []
        for ep in self.store.endpoints(network_id=network_id):
            if ep.ip and name in {n.lower() for n in self.dns_names(ep)}:
                v4.append(ep.ip)
                v6 += [ep.ip6] if ep.ip6 else []
        return v4 + v6

    def dns_names(self, ep: Endpoint) -> list[str]:
        """What an endpoint on a user-defined network answers to, in dockerd's order: the container's
        name now, its aliases, short ID and hostname."""
        try:
            c = self._containers().get(ep.container_id)
            name, hostname = c.name, c.config.hostname
        except EngineError:
            name, hostname = ep.name, ""
        return dns_names(ep, name, hostname)


def dns_names(ep: Endpoint, name: str, hostname: str) -> list[str]:
    """What `ep` answers to on a user-defined network, its container being named `name` (a leading / is
    dropped) with `hostname`, in dockerd's order: name, aliases, short ID, hostname."""
    return list(dict.fromkeys(n for n in (name.lstrip("/"), *(ep.aliases or []), ep.container_id[:12], hostname)
                              if n))
