"""The networks, endpoints and sandboxes tables: the only SQL on them.

The tables are the truth the kernel objects are derived from (see
engine.network.service), so every read and write of them goes through this
one class; the checks that must be atomic with a write (a name taken, a
network still in use, an address taken) run inside the same transaction.

- networks: one row per network; `data` is Docker's inspect document plus
  private keys (`_device` the bridge, `_auto` a pool pydock picked).
- endpoints: a container's membership of a network; `ip` is set while the
  container's network is up, `data` keeps aliases, the requested address,
  endpoint ID, MAC and the container's name at the time.
- sandboxes: a container whose network namespace exists; `data` keeps the
  namespace path and its published port rules.
- links: dockerd's legacy links (`--link name:alias` off user-defined
  networks): the parent knows the child by the alias; the child by its ID, so
  a rename changes nothing and a removed child's links go with it.

What describes a running container's network (its sandbox row, its
endpoints' addresses and published ports) is committed without waiting for
the disk (`durable=False`): it stands for kernel objects (a namespace, veths,
NAT rules) that no reboot leaves, so a power loss can only take rows whose
objects it took too, and a daemon crash loses no commit. That spares an
fsync at each of a start's and an exit's steps.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Collection
from typing import Any

from engine.errors import Conflict, Forbidden, InvalidParameter, NotFound
from engine.network.types import Endpoint, Network
from engine.store.db import MetaStore

NETWORK_SCHEMA = """
CREATE TABLE IF NOT EXISTS networks (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    data TEXT NOT NULL              -- JSON: Docker's network inspect document (+ _device)
);
CREATE TABLE IF NOT EXISTS endpoints (
    network_id TEXT NOT NULL,
    container_id TEXT NOT NULL,
    ip TEXT,                        -- allocated address while the container's network is up, else NULL
    data TEXT NOT NULL,             -- JSON: aliases, requested address, endpoint id, MAC, container name
    PRIMARY KEY (network_id, container_id),
    UNIQUE (network_id, ip)
);
CREATE TABLE IF NOT EXISTS sandboxes (
    container_id TEXT PRIMARY KEY,  -- a container whose network namespace exists
    data TEXT NOT NULL              -- JSON: netns path, published port rules
);
CREATE TABLE IF NOT EXISTS links (
    parent_id TEXT NOT NULL,        -- the linking container
    alias TEXT NOT NULL,            -- the name the parent knows the child by
    child_id TEXT NOT NULL,
    PRIMARY KEY (parent_id, alias)
);
"""



class NetworkStore:
    def __init__(self, meta: MetaStore) -> None:
        self.meta = meta
        meta.ensure_schema(NETWORK_SCHEMA)

    # ---- networks --------------------------------------------------------
    def networks(self) -> list[Network]:
        """Every network, by name."""
        return [Network.from_stored(json.loads(r["data"])) for r in self.meta.query("SELECT data FROM networks ORDER BY name")]

    def resolve(self, ref: str) -> Network:
        """Docker's lookup order: full ID, exact name, then unique ID prefix."""
        if not isinstance(ref, str) or not ref or len(ref) > 300:
            raise NotFound(f"network {str(ref)[:300]} not found")
        row = self.meta.query_one("SELECT data FROM networks WHERE id=?", (ref,)) or \
            self.meta.query_one("SELECT data FROM networks WHERE name=?", (ref,))
        if row is None and all(c in "0123456789abcdef" for c in ref):
            rows = self.meta.query("SELECT data FROM networks WHERE id LIKE ?", (ref + "%",))
            if len(rows) > 1:
                raise InvalidParameter(f"network {ref} is ambiguous ({len(rows)} matches found based on ID prefix)")
            row = rows[0] if rows else None
        if row is None:
            raise NotFound(f"network {ref} not found")
        return Network.from_stored(json.loads(row["data"]))

    def insert_network(self, net: Network) -> None:
        with self.meta.transaction() as db:
            if db.execute("SELECT 1 FROM networks WHERE name=?", (net.name,)).fetchone():
                raise Conflict(f"network with name {net.name} already exists")
            db.execute("INSERT INTO networks(id, name, data) VALUES (?,?,?)",
                       (net.id, net.name, json.dumps(net.to_stored())))

    def update_network(self, net: Network) -> None:
        with self.meta.transaction() as db:
            db.execute("UPDATE networks SET data=? WHERE id=?", (json.dumps(net.to_stored()), net.id))

    def delete_network(self, net: Network) -> None:
        """Delete an unused network; the check and the delete are one step against concurrent connects."""
        with self.meta.transaction() as db:
            users = db.execute("SELECT container_id, data FROM endpoints WHERE network_id=?", (net.id,)).fetchall()
            if users:
                eps = ", ".join(f'name:"{json.loads(u["data"])["Name"]}" id:"{u["container_id"][:12]}"'
                                for u in users)
                raise Forbidden(f"error while removing network: network {net.name} has active endpoints ({eps})")
            db.execute("DELETE FROM networks WHERE id=?", (net.id,))

    # ---- endpoints -------------------------------------------------------
    def endpoints(self, network_id: str | None = None, container_id: str | None = None) -> list[Endpoint]:
        """Endpoints in creation order, of one network and/or one container."""
        sql, args = "SELECT network_id, container_id, ip, data FROM endpoints WHERE 1=1", list[str]()
        if network_id:
            sql, args = sql + " AND network_id=?", [*args, network_id]
        if container_id:
            sql, args = sql + " AND container_id=?", [*args, container_id]
        rows = self.meta.query(sql + " ORDER BY rowid", tuple(args))
        return [Endpoint.from_row(r["network_id"], r["container_id"], r["ip"], json.loads(r["data"])) for r in rows]

    def endpoints_of(self, container_ids: Collection[str]) -> list[Endpoint]:
        """The endpoints of these containers, in creation order: one query, and only theirs decoded."""
        rows = self.meta.query("SELECT network_id, container_id, ip, data FROM endpoints ORDER BY rowid")
        return [Endpoint.from_row(r["network_id"], r["container_id"], r["ip"], json.loads(r["data"])) for r in rows
                if r["container_id"] in container_ids]

    def endpoint(self, network_id: str, container_id: str) -> Endpoint | None:
        return next(iter(self.endpoints(network_id, container_id)), None)

    def in_use(self, network_id: str) -> bool:
        return self.meta.query_one("SELECT 1 FROM endpoints WHERE network_id=?", (network_id,)) is not None

    def address_owner(self, network_id: str, ip: str) -> str | None:
        """The container holding `ip` on a network (the embedded DNS's querier), if any."""
        row = self.meta.query_one("SELECT container_id FROM endpoints WHERE network_id=? AND ip=?", (network_id, ip))
        return row["container_id"] if row else None

    def add_endpoint(self, net: Network, ep: Endpoint) -> None:
        with self.meta.transaction() as db:
            if db.execute("SELECT 1 FROM endpoints WHERE network_id=? AND container_id=?",
                          (net.id, ep.container_id)).fetchone():
                raise Forbidden(f"endpoint with name {ep.name} already exists in network {net.name}")
            db.execute("INSERT INTO endpoints(network_id, container_id, ip, data) VALUES (?,?,NULL,?)",
                       (net.id, ep.container_id, json.dumps(ep.data_json())))

    def assign_address(self, network_id: str, pick: Callable[[set[str], set[str]], Endpoint]) -> Endpoint:
        """Save the endpoint (with its addresses) `pick` makes from the network's taken IPv4 and IPv6
        addresses, atomically (transactions are serialized, so no two picks see the same taken sets)."""
        with self.meta.transaction(durable=False) as db:
            rows = db.execute("SELECT ip, data FROM endpoints WHERE network_id=? AND ip IS NOT NULL",
                              (network_id,)).fetchall()
            taken = {r["ip"] for r in rows}
            taken6 = {json.loads(r["data"]).get("GlobalIPv6Address") for r in rows} - {None, ""}
            ep = pick(taken, taken6)
            db.execute("UPDATE endpoints SET ip=?, data=? WHERE network_id=? AND container_id=?",
                       (ep.ip, json.dumps(ep.data_json()), network_id, ep.container_id))
        return ep

    def delete_endpoint(self, network_id: str, cid: str) -> None:
        with self.meta.transaction() as db:
            db.execute("DELETE FROM endpoints WHERE network_id=? AND container_id=?", (network_id, cid))

    def delete_endpoints_of_prefix(self, network_id: str, cid_prefix: str) -> None:
        """A forced disconnect of a container that is gone: whatever endpoint its ID prefix names."""
        with self.meta.transaction() as db:
            db.execute("DELETE FROM endpoints WHERE network_id=? AND container_id LIKE ?",
                       (network_id, cid_prefix + "%"))

    def delete_container_endpoints(self, cid: str) -> None:
        with self.meta.transaction() as db:
            db.execute("DELETE FROM endpoints WHERE container_id=?", (cid,))

    # ---- sandboxes -------------------------------------------------------
    def sandbox(self, cid: str) -> dict[str, Any] | None:
        """A container's sandbox data ({"path", "ports"}), or None when its namespace does not exist."""
        row = self.meta.query_one("SELECT data FROM sandboxes WHERE container_id=?", (cid,))
        return json.loads(row["data"]) if row else None

    def sandboxes(self) -> dict[str, dict[str, Any]]:
        """Every sandbox's data, by container ID."""
        return {r["container_id"]: json.loads(r["data"]) for r in self.meta.query("SELECT container_id, data FROM sandboxes")}

    def sandbox_ids(self) -> set[str]:
        return {r["container_id"] for r in self.meta.query("SELECT container_id FROM sandboxes")}

    def any_sandbox(self) -> bool:
        return self.meta.query_one("SELECT container_id FROM sandboxes") is not None

    def add_sandbox(self, cid: str, path: str) -> None:
        with self.meta.transaction(durable=False) as db:
            db.execute("INSERT INTO sandboxes(container_id, data) VALUES (?,?)",
                       (cid, json.dumps({"path": path, "ports": []})))

    def port_rules(self) -> list[dict[str, Any]]:
        """Every sandbox's published port rules (engine.network.firewall.PortRule fields)."""
        return [p for r in self.meta.query("SELECT data FROM sandboxes") for p in json.loads(r["data"])["ports"]]

    def set_ports(self, cid: str, rules: list[dict[str, Any]]) -> None:
        with self.meta.transaction(durable=False) as db:
            row = db.execute("SELECT data FROM sandboxes WHERE container_id=?", (cid,)).fetchone()
            data = dict(json.loads(row["data"]), ports=rules)
            db.execute("UPDATE sandboxes SET data=? WHERE container_id=?", (json.dumps(data), cid))

    def release_sandbox(self, cid: str, endpoints: list[Endpoint]) -> None:
        """The namespace is gone: its endpoints lose their addresses and the sandbox row goes, in one step."""
        with self.meta.transaction(durable=False) as db:
            for ep in endpoints:
                data = dataclasses.replace(ep, endpoint_id="", mac="", ip6="").data_json()
                db.execute("UPDATE endpoints SET ip=NULL, data=? WHERE network_id=? AND container_id=?",
                           (json.dumps(data), ep.network_id, cid))
            db.execute("DELETE FROM sandboxes WHERE container_id=?", (cid,))

    # ---- legacy links ----------------------------------------------------
    def add_links(self, parent_id: str, links: list[tuple[str, str]]) -> None:
        """(alias, child ID) pairs of a new container; a repeated alias keeps its first child, as dockerd."""
        with self.meta.transaction() as db:
            db.executemany("INSERT OR IGNORE INTO links(parent_id, alias, child_id) VALUES (?,?,?)",
                           [(parent_id, alias, child) for alias, child in links])

    def children(self, parent_id: str) -> list[tuple[str, str]]:
        """A container's links as (alias, child ID), in the order they were given."""
        rows = self.meta.query("SELECT alias, child_id FROM links WHERE parent_id=? ORDER BY rowid", (parent_id,))
        return [(r["alias"], r["child_id"]) for r in rows]

    def parents(self, child_id: str) -> list[tuple[str, str]]:
        """The containers linking to `child_id`, as (parent ID, alias)."""
        rows = self.meta.query("SELECT parent_id, alias FROM links WHERE child_id=? ORDER BY rowid", (child_id,))
        return [(r["parent_id"], r["alias"]) for r in rows]

    def delete_link(self, parent_id: str, alias: str) -> None:
        with self.meta.transaction() as db:
            db.execute("DELETE FROM links WHERE parent_id=? AND alias=?", (parent_id, alias))

    def delete_links(self, cid: str) -> None:
        """A removed container's links, as parent and as child."""
        with self.meta.transaction() as db:
            db.execute("DELETE FROM links WHERE parent_id=? OR child_id=?", (cid, cid))
