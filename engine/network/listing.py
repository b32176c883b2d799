"""The networking of many containers at once, for a `docker ps`, from one read of each table.

A `ps` row shows a container's Ports and NetworkSettings.Networks, built
from its `Networking` record. Made one container at a time (as inspect does)
that is several queries and JSON decodes per container, plus a record load
per endpoint for its DNS names; with hundreds of containers that dominated
the listing. Here the endpoints (of the listed containers only), networks
and sandboxes are each read once and joined in memory, and the DNS names
come from the records being listed.
"""
from __future__ import annotations

from collections.abc import Sequence

from engine.network.names import dns_names
from engine.network.peers import NetworkedContainer, own_namespace
from engine.network.ports import exposed, published_ports
from engine.network.store import NetworkStore
from engine.network.types import Attachment, Endpoint, Networking


def networkings(store: NetworkStore, cs: Sequence[NetworkedContainer]) -> dict[str, Networking]:
    """Each container's Networking by ID: what NetworkService.networking gives for one container."""
    nets = {net.id: net for net in store.networks()}
    sandboxes = store.sandboxes()
    by_container: dict[str, list[Endpoint]] = {}
    for ep in store.endpoints_of({c.id for c in cs}):
        by_container.setdefault(ep.container_id, []).append(ep)
    out = {}
    for c in cs:
        live = c.state.running and own_namespace(c)
        attachments = tuple(Attachment(net, ep, dns_names(ep, c.name, c.config.hostname) if not net.predefined
                                       else None)
                            for ep in by_container.get(c.id, []) for net in [nets.get(ep.network_id)] if net)
        sandbox = sandboxes.get(c.id)
        out[c.id] = Networking(c.id, sandbox["path"] if sandbox else "",
                               tuple(exposed(c.config.exposed_ports)) if live else (),
                               published_ports(sandbox) if live else (), attachments)
    return out
